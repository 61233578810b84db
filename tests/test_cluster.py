"""What training jobs ask a cluster for: wall time from model, dataset and attempt; memory
enough for the largest dataset, measured on a real run."""

import subprocess
import sys

import numpy as np
import pytest
import yaml

from rethink.cluster import training_mem_mb, training_runtime_minutes
from rethink.config import load_study
from rethink.datasets import DATASETS
from rethink.h5io import ImageDataset, Split, write_dataset
from rethink.train import RunConfig
from tests.conftest import REPO

CLUSTER = load_study(REPO / "config.yaml")["cluster"]


def test_runtime_grows_with_model_cost_epochs_images_and_attempt():
    cifar10, mnist5k = DATASETS["cifar10"], DATASETS["mnist5k"]
    inception = RunConfig("inception", max_epochs=200)
    # 10 + 6 minutes per million images x 200 epochs x 50,000 images
    assert training_runtime_minutes(inception, cifar10, CLUSTER) == 70
    assert training_runtime_minutes(inception, cifar10, CLUSTER, attempt=2) == 140
    assert training_runtime_minutes(RunConfig("mlp1x512", max_epochs=200), cifar10, CLUSTER) == 15
    subset = RunConfig("inception", max_epochs=200, train_subset=256)
    assert training_runtime_minutes(subset, cifar10, CLUSTER) == 11
    assert training_runtime_minutes(RunConfig("inception", max_epochs=200), mnist5k, CLUSTER) == 15
    own_model = {**CLUSTER, "minutes_per_million_images": {"default": 1}}
    assert training_runtime_minutes(inception, cifar10, own_model) == 20


def test_memory_grows_with_the_dataset():
    # 4,000 MB + 12 bytes x 60,000 x 32 x 32 x 3 pixels
    assert training_mem_mb(DATASETS["cifar10"], CLUSTER) == 4000 + 2110
    assert training_mem_mb(DATASETS["mnist5k"], CLUSTER) == 4000 + 45


@pytest.mark.slow
def test_a_cifar10_sized_run_fits_in_the_memory_it_asks_for(tmp_path):
    """Float32 images (the gaussian variant's type: the largest files) of CIFAR-10's shape and
    count, one epoch of mlp1x512, peak resident memory of the whole process measured."""
    rng = np.random.default_rng(0)
    (train, test), shape = DATASETS["cifar10"].size, DATASETS["cifar10"].image_shape

    def split(n):
        return Split(rng.standard_normal((n, *shape), dtype=np.float32), rng.integers(0, 10, n))

    path = tmp_path / "gaussian.h5"
    write_dataset(path, ImageDataset(split(train), split(test), [str(i) for i in range(10)], {}))
    run = "\n".join([
        "import resource",
        "from rethink.train import RunConfig, train_run",
        f"train_run({str(path)!r}, {str(tmp_path / 'run')!r}, "
        "RunConfig('mlp1x512', max_epochs=1, device='cpu'))",
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",  # KiB on Linux
    ])  # fmt: skip
    child = subprocess.run(
        [sys.executable, "-c", run], check=True, capture_output=True, text=True, timeout=600
    )
    peak_mb = int(child.stdout.split()[-1]) / 1024
    asked_mb = training_mem_mb(DATASETS["cifar10"], CLUSTER)
    assert peak_mb < asked_mb, f"peak {peak_mb:.0f} MB, asked for {asked_mb} MB"
    print(f"peak {peak_mb:.0f} MB of the {asked_mb} MB asked for")


def test_the_workflow_profile_changes_nothing_the_slurm_profile_sets():
    """Snakemake reads profiles/default on every run, `--profile slurm` included, and its keys
    override the other profile's: so it holds only keys the SLURM profile does not set, and
    only the two that make reruns depend on content (docs/reruns.md)."""
    default = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    slurm = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert set(default) == {"max-checksum-file-size", "rerun-triggers", "scheduler"}
    assert not set(default) & set(slurm)
    assert "code" not in default["rerun-triggers"] and "mtime" in default["rerun-triggers"]
