"""What a training job asks a cluster for: wall time and memory that fit its model and dataset.

Only a cluster executor (`snakemake --profile slurm`) reads these; a local run ignores
them. Wall time grows with the attempt: a job killed at its time limit is resubmitted with more
and resumes from its last checkpoint, so an estimate on the short side costs one requeue, never
the work already done.
"""

import math

from rethink.datasets import DatasetSource
from rethink.train import RunConfig

# Host memory per pixel of the dataset: the uint8 (or float32) images as read, their float32
# preprocessed copy, and slack for the tensors built from them.
BYTES_PER_PIXEL = 12


def training_runtime_minutes(
    run: RunConfig, dataset: DatasetSource, cluster: dict, attempt: int = 1
) -> int:
    """Minutes for `run` on `dataset`: a base for start-up, plus the model's minutes per million
    training images (on one GPU) times the images of `max_epochs` epochs, shared by the run's
    GPUs, times the attempt."""
    per_million = cluster["minutes_per_million_images"]
    rate = per_million.get(run.model, per_million["default"])
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
