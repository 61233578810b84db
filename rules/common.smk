# The workflow's own Python: config validation, the experiment grid, input functions.
import atexit
import math
import os
import re
from pathlib import Path

from jsonschema import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from rethink.cluster import training_mem_mb, training_runtime_minutes
from rethink.config import (
    ConfigError,
    check_config,
    describe_schema_error,
    run_config,
    run_table,
    variant_seed,
)
from rethink.datasets import ARCHIVE_DIR, ARCHIVES, DATASETS
from rethink.figures import FIGURES, drawable_figures
from rethink.distributed import is_streamed
from rethink.gpus import JOBS_PER_GPU_VARIABLE
from rethink.imagenet import find_imagenet
from rethink.kernel_report import KERNEL_FIGURE
from rethink.memorization import EXAMPLES_FILE
from rethink.memorization_figures import MEMORIZATION_FIGURES, drawable_memorization_figures
from rethink.models import MODELS
from rethink.mps import start_mps, stop_mps
from rethink.rademacher import rademacher_runs
from rethink.run_lock import WORKFLOW_PID_VARIABLE
from rethink.sources import package_sources, workdir_relative
from rethink.table1 import PAPER_TABLE1, table1_runs
from rethink.table2 import PAPER_TABLE2, table2_runs
from rethink.variants import label_corruption

try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as err:  # raised while handling jsonschema's ValidationError
    if not isinstance(err.__context__, ValidationError):
        raise
    raise ConfigError(describe_schema_error(err.__context__)) from None
check_config(config)
# ImageNet's local copy is checked before any job, unless it was converted already.
if "imagenet" in config["datasets"] and not os.path.exists("results/datasets/imagenet.h5"):
    find_imagenet(config["data"]["imagenet_path"])
# Several training jobs per GPU (gpus.jobs_per_gpu), optionally under NVIDIA MPS, started for a
# local run and stopped when Snakemake exits (rethink.mps). Cluster jobs inherit the setting.
os.environ[JOBS_PER_GPU_VARIABLE] = str(config["gpus"]["jobs_per_gpu"])
# Jobs end with this Snakemake process, even when it is killed alone (rethink.run_lock).
os.environ[WORKFLOW_PID_VARIABLE] = str(os.getpid())


onstart:
    if config["gpus"]["mps"] and workflow.local_exec and start_mps():
        atexit.register(stop_mps)


RUNS = run_table(config)  # one row per training run: dataset, variant, model, regularizer, seed
RUN_DIR = "results/runs/{dataset}/{variant}/{model}/{regularizer}/seed{seed}"
# examples.h5, when the study records every example's fate (training.record_examples)
RECORD_EXAMPLES = config["training"]["record_examples"]
RUN_EXAMPLES = {"examples": f"{RUN_DIR}/{EXAMPLES_FILE}"} if RECORD_EXAMPLES else {}
# whether any run measures critical samples (training.critical_examples, per model too)
CRITICAL_MEASURED = RECORD_EXAMPLES and any(
    run_config(config, m, "none", 0).critical_examples for m in RUNS.model.unique()
)
# The label variants (true, corrupt{p}, random) get a Gaussian-kernel interpolation each.
KERNEL_VARIANTS = [v for v in config["variants"]["names"] if not math.isnan(label_corruption(v))]


wildcard_constraints:
    dataset="|".join(DATASETS),
    variant="|".join(config["variants"]["names"]),
    archive="|".join(ARCHIVES),
    model="|".join(MODELS),
    regularizer="|".join(re.escape(r) for r in RUNS.regularizer.unique()) or "none",
    seed="[0-9]+",
    figure="|".join([*FIGURES, *MEMORIZATION_FIGURES]),


def script_code(script):
    """scripts/`script` and the rethink modules it imports. Rules list them as inputs, so that
    an edit reruns the jobs that run them: Snakemake sees no imported module, and judges the
    script by its modification time alone, which `touch`, `cp` and `git checkout` change
    (the workflow profile turns that check off: profiles/default/config.yaml)."""
    path = Path(workflow.basedir) / "scripts" / script
    return [workdir_relative(path), *package_sources(path)]


def get_archives(wildcards):
    """The downloaded files dataset `wildcards.dataset` is built from (none for mnist5k)."""
    return [f"{ARCHIVE_DIR}/{archive.filename}" for archive in DATASETS[wildcards.dataset].archives]


def get_run_source(wildcards):
    """The dataset a run's variant was made from: its original labels, for examples.h5."""
    return f"results/datasets/{wildcards.dataset}.h5" if RECORD_EXAMPLES else []


def get_run_params(wildcards):
    """What determines the run's numbers: a change reruns the run. Threads, device and
    checkpointing do not count; the script takes them from the config."""
    run = run_config(config, wildcards.model, wildcards.regularizer, wildcards.seed)
    return run.determining_fields()


def get_run_runtime(wildcards, attempt):
    """Minutes a cluster job may train (rethink.cluster); each retry gets more and resumes."""
    run = run_config(config, wildcards.model, wildcards.regularizer, wildcards.seed)
    return training_runtime_minutes(run, DATASETS[wildcards.dataset], config["cluster"], attempt)


def get_run_mem_mb(wildcards):
    run = run_config(config, wildcards.model, wildcards.regularizer, wildcards.seed)
    return training_mem_mb(DATASETS[wildcards.dataset], config["cluster"], run)


def streamed_run(wildcards):
    """The RunConfig of a run that trains streamed (rethink.distributed), else None."""
    run = run_config(config, wildcards.model, wildcards.regularizer, wildcards.seed)
    return run if is_streamed(run, wildcards.dataset) else None


def get_run_threads(wildcards):
    """Streamed runs: a core per process and per loader worker (per node); others one."""
    run = streamed_run(wildcards)
    return run.gpus_per_node * (1 + run.loader_workers) if run else 1


# A run over several nodes is an `mpi` job to the SLURM executor plugin: its batch script runs
# the job itself (no `srun -n1` around it), one task per node, and rethink.launch starts a
# torchrun on each with `srun`. On one node, the job's processes share its one task.
def get_run_gpus(wildcards):
    """GPUs of a one-node run (the local `--resources gpu=N` counts them too)."""
    run = streamed_run(wildcards)
    return 1 if run is None else run.gpus_per_node if run.nodes == 1 else None


def get_run_nodes(wildcards):
    run = streamed_run(wildcards)
    return run.nodes if run and run.nodes > 1 else None


def get_run_mpi(wildcards):
    return "srun" if get_run_nodes(wildcards) else None


def get_run_slurm_extra(wildcards):
    """sbatch flags of a run over several nodes: each node's GPUs."""
    run = streamed_run(wildcards)
    cpu_only = run is not None and run.device == "cpu"
    return (
        f"--gpus-per-node={run.gpus_per_node}"
        if get_run_nodes(wildcards) and not cpu_only
        else None
    )


# Per image, slowest first: the order in which the scheduler starts ready training jobs.
SLOWEST_MODELS_FIRST = ["inception", "inception-nobn", "alexnet", "mlp3x512", "mlp1x512"]


def get_run_priority(wildcards):
    """Slow runs start first (a model not listed counts as slowest; random labels and other
    corruptions outlast true ones), so that no long run is left running alone at the end."""
    order = SLOWEST_MODELS_FIRST
    rank = order.index(wildcards.model) if wildcards.model in order else -1
    return 2 * (len(order) - rank) + (wildcards.variant != "true")


def run_files(name, dataset=None):
    """One file of every planned run (of `dataset`, if given), e.g. run_files("summary.json")."""
    runs = RUNS if dataset is None else RUNS[RUNS.dataset == dataset]
    return [f"{RUN_DIR}/{name}".format(**row) for row in runs.to_dict("records")]


EXTS = ["png", "pdf", "csv"]  # every figure is drawn twice and saved as its tidy data


def get_final_outputs():
    variants = expand(
        "results/variants/{dataset}/{variant}.h5",
        dataset=config["datasets"],
        variant=config["variants"]["names"],
    )
    # Theorem 1 and the kernels need every image as pixels in memory: not for JPEG datasets.
    in_memory = [d for d in config["datasets"] if not DATASETS[d].encoded]
    theory = expand("results/theory/{dataset}.csv", dataset=in_memory)
    if KERNEL_VARIANTS:
        theory += expand("results/kernels/{d}.csv", d=in_memory)
        theory += expand("results/figures/{d}/{f}.{ext}", d=in_memory, f=KERNEL_FIGURE, ext=EXTS)
    if RUNS.empty:
        return variants + theory
    outputs = variants + theory + ["results/tables/runs.csv"]
    for dataset, runs in RUNS.groupby("dataset"):
        for figure in drawable_figures(runs):
            outputs += expand("results/figures/{d}/{f}.{ext}", d=dataset, f=figure, ext=EXTS)
        if not rademacher_runs(runs).empty:
            outputs += expand("results/tables/{d}/rademacher.{ext}", d=dataset, ext=["csv", "md"])
        if RECORD_EXAMPLES:
            outputs += expand(
                "results/tables/{d}/{t}.csv",
                d=dataset,
                t=[
                    "memorization-examples",
                    "memorization-epochs",
                    "critical-samples",
                    "consistency",
                ],
            )
            outputs.append(f"results/tables/{dataset}/consistency.md")
            for figure in drawable_memorization_figures(runs, CRITICAL_MEASURED):
                outputs += expand("results/figures/{d}/{f}.{ext}", d=dataset, f=figure, ext=EXTS)
        if DATASETS[dataset].encoded and not table2_runs(runs).empty:  # ImageNet's table
            outputs += expand(
                "results/tables/{d}/table2.{ext}", d=dataset, ext=["csv", "md", "tex"]
            )
        if not DATASETS[dataset].encoded and not table1_runs(runs).empty:
            outputs += expand(
                "results/tables/{d}/table1.{ext}", d=dataset, ext=["csv", "md", "tex"]
            )
    return outputs


# `snakemake --cores all docs` copies these into docs/ and Table 1 into the README.
DOCS_DATASET = config["datasets"][0]
DOCS_FIGURES = ["fig1a", "fig1b", "fig1c", "fig2a"]
if RECORD_EXAMPLES:  # and those of the memorization section that the study draws
    DOCS_FIGURES += drawable_memorization_figures(
        RUNS[RUNS.dataset == DOCS_DATASET], CRITICAL_MEASURED
    )
