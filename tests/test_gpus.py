"""One GPU per training job, simulated: a fake `nvidia-smi` lists the GPUs, no CUDA needed."""

import fcntl
import json
import os
import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from rethink.gpus import claimed_gpu, gpu_count
from tests.conftest import run_snakemake


def fake_nvidia_smi(directory: Path, n: int) -> str:
    """A PATH on which `nvidia-smi -L` lists n GPUs."""
    directory.mkdir(exist_ok=True)
    lines = "".join(f'echo "GPU {i}: Simulated GPU (UUID: GPU-{i})"\n' for i in range(n))
    smi = directory / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + lines)
    smi.chmod(0o755)
    return f"{directory}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture
def two_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path / "bin", 2))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_each_claim_gets_a_free_gpu_and_releases_it(two_gpus, tmp_path):
    assert gpu_count() == 2
    locks = tmp_path / "locks"
    with claimed_gpu(locks) as first:
        assert first == 0 and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    with (locks / "gpu0.lock").open("a") as other_job:  # GPU 0 busy with another job
        fcntl.flock(other_job, fcntl.LOCK_EX)
        with claimed_gpu(locks) as second:
            assert second == 1 and os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    with claimed_gpu(locks) as again:  # the other job ended: GPU 0 is free again
        assert again == 0


def test_a_gpu_chosen_already_or_no_gpu_is_left_alone(two_gpus, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # e.g. set by SLURM for a gres job
    with claimed_gpu(tmp_path) as index:
        assert index is None and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with claimed_gpu(tmp_path) as index:
        assert index is None and "CUDA_VISIBLE_DEVICES" not in os.environ


def _claims(log: Path) -> list[tuple[int, datetime, datetime]]:
    text = log.read_text()
    stamp = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
    claimed = re.findall(stamp + r" INFO rethink.gpus: claimed GPU (\d)", text)
    released = re.findall(stamp + r" INFO rethink.gpus: released GPU (\d)", text)
    parse = lambda s: datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f")  # noqa: E731
    return [(int(g), parse(a), parse(b)) for (a, g), (b, _) in zip(claimed, released, strict=True)]


@pytest.mark.slow
def test_training_jobs_run_one_per_gpu(tmp_path):
    study = {
        "datasets": ["mnist5k"],
        "variants": {"names": ["true", "random", "gaussian"]},
        "runs": [{"models": ["mlp1x512", "mlp3x512"], "regularizers": ["none"]}],
        "training": {"max_epochs": 3, "train_subset": 512, "test_subset": 256},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(study))
    env = {"PATH": fake_nvidia_smi(tmp_path / "bin", 2)}
    result = run_snakemake(
        tmp_path, "results/tables/runs.csv", "--cores", "4", "--resources", "gpu=2", env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    claims = [c for log in (tmp_path / "logs" / "runs").rglob("*.log") for c in _claims(log)]
    assert len(claims) == 6 and {gpu for gpu, _, _ in claims} == {0, 1}
    for gpu in (0, 1):  # never two jobs on one GPU
        spans = sorted((start, end) for g, start, end in claims if g == gpu)
        assert all(
            end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False)
        )
    overlapping = [
        (a, b) for a in claims for b in claims if a is not b and a[1] < b[2] and b[1] < a[2]
    ]
    assert overlapping, "with gpu=2 two jobs should have run at once"
    for summary in (tmp_path / "results" / "runs").rglob("summary.json"):
        assert json.loads(summary.read_text())["cuda_visible_devices"] in {"0", "1"}
