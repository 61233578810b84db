# The workflow's own Python: config validation, the experiment grid, wildcard constraints and
# input functions. Resources and targets are package functions (rethink.workflow); nothing
# imported here imports torch, so planning a study costs what its DAG costs.
import atexit
import os
import re
from pathlib import Path

from jsonschema import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from rethink.config import (
    ConfigError,
    check_config,
    describe_schema_error,
    run_table,
    variant_seed,
)
from rethink.data.datasets import ARCHIVE_DIR, ARCHIVES, DATASETS
from rethink.data.imagenet import find_imagenet
from rethink.data.variants import parse_variant
from rethink.measures import MEASURE_DIR, MEASURE_TABLES
from rethink.memorization import EXAMPLES_FILE
from rethink.models import MODELS
from rethink.results.catalog import FIGURES, KERNEL_FIGURE, figures_reading, margin_figure_runs
from rethink.results.table1 import PAPER_TABLE1
from rethink.results.table2 import PAPER_TABLE2
from rethink.runs import RUN_DIR, WEIGHTS_FILE, RunKey
from rethink.training.run_lock import WORKFLOW_PID_VARIABLE
from rethink.workflow import targets
from rethink.workflow.gpus import JOBS_PER_GPU_VARIABLE
from rethink.workflow.mps import start_mps, stop_mps
from rethink.workflow.resources import TrainingResources, array_rules
from rethink.workflow.checkpoints import checkpointed_runs, remove_finished_checkpoints
from rethink.workflow.fingerprints import code_fingerprint
from rethink.workflow.sources import workdir_relative

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
# local run and stopped when Snakemake exits (rethink.workflow.mps). Cluster jobs inherit
# the setting.
os.environ[JOBS_PER_GPU_VARIABLE] = str(config["gpus"]["jobs_per_gpu"])
# Jobs end with this Snakemake process, even when it is killed alone (rethink.training.run_lock).
os.environ[WORKFLOW_PID_VARIABLE] = str(os.getpid())


onstart:
    # Every model of the study builds and gives its logits, before the first job; here, as
    # it imports torch, which planning never does.
    from rethink.models.checks import check_study_models

    check_study_models(config, RUNS)
    RESOURCES.check_arrays()
    if config["gpus"]["mps"] and workflow.local_exec and start_mps():
        atexit.register(stop_mps)


# Finished runs' checkpoints go once Snakemake has registered their outputs, when it ends
# with success or not (rethink.workflow.checkpoints); cluster jobs run no handlers.
onsuccess:
    remove_finished_checkpoints(checkpointed_runs(config, RUNS))


onerror:
    remove_finished_checkpoints(checkpointed_runs(config, RUNS))


RUNS = run_table(config)  # one row per training run: dataset, variant, model, regularizer, seed
# examples.h5, when the study records every example's fate (training.record_examples)
RECORD_EXAMPLES = config["training"]["record_examples"]
RUN_EXAMPLES = {"examples": f"{RUN_DIR}/{EXAMPLES_FILE}"} if RECORD_EXAMPLES else {}
KERNEL_VARIANTS = targets.kernel_variants(config)
# Rule train_run's threads, priority and resources; uniform over the study's runs when they go
# out as SLURM job arrays (`--slurm-array-jobs train_run`), which share their first job's. The
# executor's settings are known once the workflow executes, after this file is parsed.
RESOURCES = TrainingResources(
    config,
    RUNS,
    in_arrays=lambda: bool({"train_run", "all"} & array_rules(workflow.executor_settings)),
)


wildcard_constraints:
    dataset="|".join(DATASETS),
    variant="|".join(config["variants"]["names"]),
    archive="|".join(ARCHIVES),
    model="|".join(MODELS),
    regularizer="|".join(re.escape(r) for r in RUNS.regularizer.unique()) or "none",
    seed="[0-9]+",
    figure="|".join(FIGURES),


def script_code(script, entries=None):
    """The fingerprint of the code that scripts/`script` runs (rethink.workflow.fingerprints),
    reading the registry entries `entries(wildcards)` names; a parameter of the rules, so that
    an edit reruns the jobs whose code it changes and no others. (Snakemake's own `code`
    trigger sees the script alone, by its modification time; profiles/default turns it off.)"""
    path = Path(workflow.basedir) / "scripts" / script
    if entries is None:
        return code_fingerprint(path)
    return lambda wildcards: code_fingerprint(path, entries(wildcards))


def get_archives(wildcards):
    """The downloaded files dataset `wildcards.dataset` is built from (none for mnist5k)."""
    return [f"{ARCHIVE_DIR}/{archive.filename}" for archive in DATASETS[wildcards.dataset].archives]


def get_run_source(wildcards):
    """The dataset a run's variant was made from: its original labels, for examples.h5."""
    return f"results/datasets/{wildcards.dataset}.h5" if RECORD_EXAMPLES else []


def run_files(name, dataset=None):
    """One file of every planned run (of `dataset`, if given), e.g. run_files("summary.json")."""
    return targets.run_files(RUNS if dataset is None else RUNS[RUNS.dataset == dataset], name)


def variant_run_files(wildcards, name):
    """File `name` of every run trained on variant `wildcards.variant` of `wildcards.dataset`."""
    runs = RUNS[(RUNS.dataset == wildcards.dataset) & (RUNS.variant == wildcards.variant)]
    return targets.run_files(runs, name)


def measure_files(name, dataset, select=None):
    """Table `name` of rule measure_runs for every variant of `dataset` with runs (of those
    `select(runs)` keeps)."""
    runs = RUNS[RUNS.dataset == dataset]
    return targets.measure_files(runs if select is None else select(runs), name)


def get_final_outputs():
    return targets.final_outputs(config, RUNS)


# `snakemake --cores all docs` copies these into docs/ and Table 1 into the README.
DOCS_DATASET = config["datasets"][0]
DOCS_FIGURES = targets.docs_figures(config, RUNS)
DOCS_TABLES = targets.docs_tables(config)  # README marker -> table
