# rethink: the randomization tests of Zhang et al. 2017, "Understanding deep learning requires
# rethinking generalization", from dataset download to figures. See README.md.
import os

from snakemake.utils import min_version

min_version("8.0")

# Jobs inherit this (and cluster jobs, which parse this file again): HDF5 must not insist on
# file locks, which shared filesystems often cannot provide. Files are written to a temporary
# and renamed, and readers never need a lock.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
# Jobs import rethink from this checkout, also inside the conda environments (--sdm conda),
# which do not install it.
python_path = os.environ.setdefault("PYTHONPATH", workflow.basedir).split(os.pathsep)
if workflow.basedir not in python_path:
    os.environ.update(PYTHONPATH=os.pathsep.join([workflow.basedir, *python_path]))


# The default study, unless `--configfile` names another: a study file is complete by itself
# (Snakemake would otherwise merge it into this one, dictionaries key by key).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


# Under a cluster executor these run where Snakemake runs: downloads need the internet, which
# compute nodes often lack, and the others take seconds.
localrules:
    all,
    download_archive,
    aggregate_runs,
    kernel_report,
    plot_figure,
    memorization_tables,
    plot_memorization_figure,
    write_table1,
    write_table2,
    write_rademacher,
    measure_tables,
    plot_measure_figure,
    docs,


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/corrupt.smk"
include: "rules/train.smk"
include: "rules/theory.smk"
include: "rules/kernels.smk"
include: "rules/aggregate.smk"
include: "rules/measures.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        get_final_outputs(),
