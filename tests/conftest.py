import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rethink.datasets import build_dataset
from rethink.h5io import ImageDataset, Split, write_dataset
from rethink.variants import make_variant

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist5k() -> ImageDataset:
    """The embedded real MNIST subset, split as in the default study."""
    return build_dataset("mnist5k", [], {"seed": 0, "test_per_class": 100})


@pytest.fixture(scope="session")
def variants(mnist5k, tmp_path_factory):
    """The true and random-label variants of mnist5k, as files."""
    root = tmp_path_factory.mktemp("variants")
    paths = {}
    for name in ("true", "random"):
        paths[name] = root / f"{name}.h5"
        write_dataset(paths[name], make_variant(mnist5k, name, seed=0))
    return paths


@pytest.fixture(scope="session")
def color_dataset() -> ImageDataset:
    """RGB images with class-dependent colour, built from a fixed seed.

    Each split holds over 320k values per channel, so that a sample variance sits within 1% of
    the truth at 4 standard errors (relative standard error sqrt(2 / n)).
    """
    rng = np.random.default_rng(1234)

    def split(n):
        labels = rng.integers(0, 10, n)
        base = rng.integers(0, 200, (n, 16, 16, 3))
        tint = (labels[:, None, None, None] * np.array([5, 3, 1])).astype(np.int64)
        return Split((base + tint).astype(np.uint8), labels)

    return ImageDataset(split(3000), split(1500), [f"c{i}" for i in range(10)], {"seed": 0})


@pytest.fixture
def caplog(caplog):
    """Log records of INFO and above (the root logger drops INFO by default)."""
    caplog.set_level(logging.INFO)
    return caplog


def run_snakemake(
    workdir: Path, *args: str, timeout: float = 600, repo: Path = REPO, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the workflow of `repo` (this repository, or a copy whose package then comes first on
    the import path) in `workdir` as a user would, capturing its output; `env` adds variables."""
    snakemake = shutil.which("snakemake", path=os.path.dirname(sys.executable)) or "snakemake"
    env = os.environ | ({} if repo == REPO else {"PYTHONPATH": str(repo)}) | (env or {})
    return subprocess.run(
        [snakemake, "--snakefile", str(repo / "Snakefile"), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
