import atexit
import contextlib
import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

from rethink.data.datasets import build_dataset
from rethink.data.h5io import ImageDataset, Split, write_dataset
from rethink.data.variants import make_variant

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


# What a checkout holds that the workflow reads: copied, it runs on its own.
WORKFLOW = ["Snakefile", "rules", "scripts", "schemas", "envs", "report", "profiles", "rethink"]


def copy_workflow(root: Path, config: dict) -> Path:
    """A checkout of the workflow at `root` (created) with `config` as its config.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def snakemake_command(workdir: Path, *args: str, repo: Path = REPO) -> list[str]:
    """`snakemake ARGS` as a user types it in a checkout (`workdir` == `repo`), or with
    `--snakefile` pointing at `repo`'s workflow from another directory."""
    snakemake = shutil.which("snakemake", path=os.path.dirname(sys.executable)) or "snakemake"
    snakefile = [] if workdir == repo else ["--snakefile", str(repo / "Snakefile")]
    return [snakemake, *snakefile, *args]


def snakemake_env(repo: Path = REPO, env: dict | None = None, planning: bool = False) -> dict:
    """The environment for `repo`'s workflow: a copy's package comes first on the import
    path; `env` adds variables. For a dry run (`planning`), the modules planning must not
    import come first, as packages that fail to import."""
    paths = [str(repo)] if repo != REPO else os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if planning:
        paths.insert(0, str(unimportable_folder()))
    path = os.pathsep.join(p for p in paths if p)
    search = {"PATH": f"{no_controller_folder()}{os.pathsep}{os.environ['PATH']}"}
    return os.environ | search | ({"PYTHONPATH": path} if path else {}) | (env or {})


@functools.cache
def no_controller_folder() -> Path:
    """A folder whose `scontrol` fails at once. Snakemake's SLURM plugin runs `scontrol show
    config` whenever Snakemake starts; where SLURM's client is installed but no controller runs
    (CI installs it for tests/test_slurm.py, whose runs set their own PATH), each start waits
    9 s for it."""
    folder = Path(tempfile.mkdtemp(prefix="rethink-no-slurm-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (folder / "scontrol").chmod(0o755)
    return folder


# Planning a study (`snakemake -n`, and the Snakefile's parse in every cluster job) must not
# import these: each costs seconds and hundreds of MB per parse. Every dry run in the tests
# runs with them unimportable, so each also proves that.
NOT_FOR_PLANNING = ("torch", "torchvision", "seaborn", "matplotlib", "PIL")


@functools.cache
def unimportable_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="rethink-planning-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name in NOT_FOR_PLANNING:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(
            f"raise ImportError('planning the workflow imported {name}')\n"
        )
    return folder


def run_snakemake(
    workdir: Path, *args: str, timeout: float = 600, repo: Path = REPO, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the workflow of `repo` (this repository, or a copy) in `workdir` as a user would,
    capturing its output; a dry run with the modules planning must not import made
    unimportable; past `timeout`, as run_with_deadline says."""
    planning = "-n" in args or "--dry-run" in args
    return run_with_deadline(
        snakemake_command(workdir, *args, repo=repo),
        cwd=workdir, env=snakemake_env(repo, env, planning), timeout=timeout,
    )  # fmt: skip


def run_with_deadline(command: list[str], timeout: float, **options) -> subprocess.CompletedProcess:
    """subprocess.run that, past `timeout`, fails the test with the tail of the command's
    output and the processes it had started, killed with it."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        parent = psutil.Process(process.pid)
        running = []
        for member in [parent, *parent.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                running.append(f"{member.pid} {' '.join(member.cmdline())[:200]}")
                member.kill()
        stderr = process.communicate()[1]
        pytest.fail(
            f"{command[0]} ran past {timeout} s; its output ends with:\n{stderr[-4000:]}\n"
            "running then:\n" + "\n".join(running),
            pytrace=False,
        )
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.fixture(scope="session")
def source_dataset(mnist5k, tmp_path_factory) -> Path:
    """mnist5k as a dataset file: the source of the `variants` (their original labels)."""
    path = tmp_path_factory.mktemp("datasets") / "mnist5k.h5"
    write_dataset(path, mnist5k)
    return path
