"""What a training job asks for: threads, GPUs, nodes, priority and, of a cluster, wall time
and memory that fit its model and dataset (rule train_run reads them through
`TrainingResources`). Imports no torch: Snakemake calls these while it plans.

Only a cluster executor (`snakemake --profile slurm`) reads wall time and memory; a local run
ignores them. Wall time grows with the attempt: a job killed at its time limit is resubmitted
with more and resumes from its last checkpoint, so an estimate on the short side costs one
requeue, never the work already done.
"""

import functools
import math
from collections.abc import Callable

import pandas as pd

from rethink.config import ConfigError, run_config
from rethink.data.datasets import DATASETS, DatasetSource
from rethink.models import MODELS, models_slowest_first
from rethink.runs import RunKey
from rethink.training.settings import RunConfig, is_streamed

# Host memory per pixel of the dataset: the uint8 (or float32) images as read, their float32
# preprocessed copy, and slack for the tensors built from them.
BYTES_PER_PIXEL = 12


def training_runtime_minutes(
    run: RunConfig, dataset: DatasetSource, cluster: dict, attempt: int = 1
) -> int:
    """Minutes for `run` on `dataset`: a base for start-up, plus the model's minutes per million
    training images on one GPU (its registry entry's, or the cluster config's) times the images
    of `max_epochs` epochs, shared by the run's GPUs, times the attempt."""
    rate = cluster["minutes_per_million_images"].get(
        run.model, MODELS[run.model].minutes_per_million_images
    )
    n_train = min(dataset.size[0], run.train_subset or dataset.size[0])
    minutes = cluster["minutes_base"] + rate * run.max_epochs * n_train / 1e6 / run.processes
    return math.ceil(minutes) * attempt


# Host memory of a DataLoader worker decoding and augmenting JPEGs, with its prefetched batches.
WORKER_MB = 1024


def training_mem_mb(dataset: DatasetSource, cluster: dict, run: RunConfig | None = None) -> int:
    """Megabytes for a training job (per node): a base for Python, torch and CUDA, plus the
    dataset; for a dataset streamed from JPEG files, a base and the loader workers per
    process instead."""
    if dataset.encoded:
        run = run or RunConfig("inception-v3")
        return run.gpus_per_node * (cluster["mem_mb_base"] + WORKER_MB * run.loader_workers)
    pixels = sum(dataset.size) * math.prod(dataset.image_shape)
    return cluster["mem_mb_base"] + math.ceil(BYTES_PER_PIXEL * pixels / 2**20)


def array_rules(executor_settings) -> set[str]:
    """The rules the SLURM executor plugin submits as job arrays (`--slurm-array-jobs`; "all"
    for every rule); none under another executor."""
    names = getattr(executor_settings, "array_jobs", None) or ""
    return {name.strip() for name in names.replace(";", ",").split(",") if name.strip()}


class TrainingResources:
    """The train_run rule's threads, priority and resources, as functions of a job's wildcards
    (dataset, variant, model, regularizer, seed). Snakemake calls several of them per job: each
    run's settings are built once.

    When train_run goes out as SLURM job arrays (`in_arrays()`, asked once the executor is
    known), every run asks for the longest wall time and largest memory of the study's `runs`:
    the plugin submits an array with its first job's resources for all. Runs that need other
    CPUs, GPUs or nodes cannot share an array: that raises before any job is submitted."""

    def __init__(
        self,
        config: dict,
        runs: pd.DataFrame | None = None,
        in_arrays: Callable[[], bool] = lambda: False,
    ):
        self.config = config
        self.runs = runs
        self.in_arrays = in_arrays

    def check_arrays(self) -> None:
        """Raise now, before any job starts, if the study's runs cannot share job arrays."""
        _ = self.array_runs

    @functools.cached_property
    def array_runs(self) -> list[RunKey] | None:
        """The study's runs when they go out as arrays, else None."""
        if not self.in_arrays():
            return None
        runs = [RunKey(**row) for row in self.runs.to_dict("records")]
        asks = {self._hardware(w): w for w in runs}
        if len(asks) > 1:
            (first, one), (second, other) = list(asks.items())[:2]
            raise ConfigError(
                "--slurm-array-jobs train_run: an array gives every run its first run's CPUs, "
                f"GPUs and nodes, and run {one.path()} asks for {first}, run {other.path()} "
                f"for {second}; submit train_run as single jobs, or give the study's runs one "
                "training.gpus_per_node, nodes and loader_workers"
            )
        return runs

    def _hardware(self, wildcards) -> str:
        gpus = self.slurm_extra(wildcards) or f"{self.gpus(wildcards) or 0} GPU(s)"
        return f"{self.threads(wildcards)} CPU(s), {gpus}, {self.nodes(wildcards) or 1} node(s)"

    @functools.cache  # noqa: B019 (one instance per workflow)
    def settings(self, model: str, regularizer: str, seed: str) -> RunConfig:
        return run_config(self.config, model, regularizer, seed)

    def run(self, wildcards) -> RunConfig:
        return self.settings(wildcards.model, wildcards.regularizer, wildcards.seed)

    def streamed(self, wildcards) -> RunConfig | None:
        """The settings of a run that streams its batches (rethink.training.batches), else None."""
        run = self.run(wildcards)
        return run if is_streamed(run, wildcards.dataset) else None

    def params(self, wildcards) -> dict:
        """What determines the run's numbers: a change reruns the run. Threads, device and
        checkpointing do not count; the script takes them from the config."""
        return self.run(wildcards).determining_fields()

    def threads(self, wildcards) -> int:
        """Streamed runs: a core per process and per loader worker (per node); others one."""
        run = self.streamed(wildcards)
        return run.gpus_per_node * (1 + run.loader_workers) if run else 1

    # A run over several nodes is an `mpi` job to the SLURM executor plugin: its batch script
    # runs the job itself (no `srun -n1` around it), one task per node, and
    # rethink.workflow.launch starts a torchrun on each with `srun`. On one node, the job's
    # processes share its one task.
    def gpus(self, wildcards) -> int | None:
        """GPUs of a one-node run (the local `--resources gpu=N` counts them too)."""
        run = self.streamed(wildcards)
        return 1 if run is None else run.gpus_per_node if run.nodes == 1 else None

    def nodes(self, wildcards) -> int | None:
        run = self.streamed(wildcards)
        return run.nodes if run and run.nodes > 1 else None

    def mpi(self, wildcards) -> str | None:
        return "srun" if self.nodes(wildcards) else None

    def slurm_extra(self, wildcards) -> str | None:
        """sbatch flags of a run over several nodes: each node's GPUs."""
        run = self.streamed(wildcards)
        if not self.nodes(wildcards) or run.device == "cpu":
            return None
        return f"--gpus-per-node={run.gpus_per_node}"

    def runtime(self, wildcards, attempt: int) -> int:
        """Minutes a cluster job may train; each retry gets more and resumes."""
        if self.array_runs:
            return max(self._runtime(w, attempt) for w in self.array_runs)
        return self._runtime(wildcards, attempt)

    def _runtime(self, wildcards, attempt: int) -> int:
        dataset = DATASETS[wildcards.dataset]
        return training_runtime_minutes(
            self.run(wildcards), dataset, self.config["cluster"], attempt
        )

    def mem_mb(self, wildcards) -> int:
        if self.array_runs:
            return max(self._mem_mb(w) for w in self.array_runs)
        return self._mem_mb(wildcards)

    def _mem_mb(self, wildcards) -> int:
        dataset = DATASETS[wildcards.dataset]
        return training_mem_mb(dataset, self.config["cluster"], self.run(wildcards))

    @staticmethod
    def priority(wildcards) -> int:
        """Slow runs start first (slow models first; random labels and other corruptions
        outlast true ones), so that no long run is left running alone at the end."""
        order = models_slowest_first()
        return 2 * (len(order) - order.index(wildcards.model)) + (wildcards.variant != "true")
