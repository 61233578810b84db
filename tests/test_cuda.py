"""The CUDA path, end to end, wherever a GPU is present; skipped, with the reason, elsewhere.

Warnings are errors in this suite (pyproject.toml): an op without a deterministic CUDA kernel,
which training only warns about, fails these tests.
"""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from rethink.models import MODELS
from rethink.theory.kernels import min_norm_interpolation
from rethink.training.loop import train_run
from rethink.training.settings import RunConfig
from tests.training.test_loop import RESUMED, history_without_time, interrupted_run, warnings_in

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none is visible"),
]

SHORT = dict(train_subset=256, test_subset=256, max_epochs=3, device="cuda")
ON_CUDA = {**RESUMED, "device": "cuda"}  # the CPU resume tests' run, on the GPU


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_trains_on_cuda_deterministically(variants, tmp_path, model):
    """Same seed, same history on one GPU: deterministic kernels, the LRN without avg_pool3d,
    augmentation and dropout drawing from the device's generators."""
    config = RunConfig(model, regularizer="augment+dropout", **SHORT)
    for run in ("a", "b"):
        summary = train_run(variants["random"], tmp_path / run, config)
        assert summary["device"].startswith("cuda") and summary["epochs"] == 3
    pd.testing.assert_frame_equal(
        history_without_time(tmp_path / "a"), history_without_time(tmp_path / "b")
    )


def test_a_run_fits_on_cuda(variants, tmp_path):
    config = RunConfig(
        "mlp1x512", lr=0.05, lr_decay=1.0, train_subset=256, max_epochs=50, device="cuda"
    )
    summary = train_run(variants["true"], tmp_path, config)
    assert summary["fitted"] and summary["steps_to_fit"] == summary["steps"]


def test_an_interrupted_cuda_run_resumes_to_the_uninterrupted_history(
    variants, tmp_path, monkeypatch, caplog
):
    config = RunConfig(**ON_CUDA)
    train_run(variants["random"], tmp_path / "whole", config)
    interrupted_run(variants, tmp_path / "resumed", monkeypatch, config)
    train_run(variants["random"], tmp_path / "resumed", config)
    assert "resuming after epoch 4" in caplog.text
    pd.testing.assert_frame_equal(
        history_without_time(tmp_path / "resumed"), history_without_time(tmp_path / "whole")
    )


def test_a_run_killed_on_the_cpu_resumes_on_cuda(variants, tmp_path, monkeypatch, caplog):
    """A checkpoint holds no random state: a CPU run's epochs 1-4 carry over unchanged and the
    rest trains on the GPU without a warning."""
    checkpoint = interrupted_run(variants, tmp_path, monkeypatch)  # on the CPU
    on_cpu = pd.DataFrame(torch.load(checkpoint, weights_only=True)["state"]["history"])
    caplog.clear()
    summary = train_run(variants["random"], tmp_path, RunConfig(**ON_CUDA))
    assert warnings_in(caplog) == [] and "resuming after epoch 4" in caplog.text
    assert summary["epochs"] == 8 and summary["device"].startswith("cuda")
    history = pd.read_csv(tmp_path / "history.csv")
    pd.testing.assert_frame_equal(history.iloc[:4], on_cpu, check_dtype=False)
    assert not checkpoint.exists()


CPU_RUN = """
import sys, torch
from rethink.training.loop import train_run
from rethink.training.settings import RunConfig
config = RunConfig("alexnet", train_subset=256, max_epochs=2, checkpoint_every=1, device="cpu")
train_run(sys.argv[1], sys.argv[2], config)
print(torch.cuda.is_initialized())
"""


def test_a_cpu_run_on_a_gpu_machine_never_initializes_cuda(variants, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", CPU_RUN, str(variants["random"]), str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "False"
    assert json.loads((tmp_path / "summary.json").read_text())["device"] == "cpu"


def test_the_kernel_fit_on_cuda_matches_the_cpu():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (600, 8, 8, 1), dtype=np.uint8), rng.integers(0, 10, 600)
    split = (images[:500], labels[:500], images[500:], labels[500:])
    cuda, cpu = (min_norm_interpolation(*split, device=d) for d in ("cuda", "cpu"))
    assert cuda["device"].startswith("cuda") and cuda["train_error"] == 0
    assert cuda["test_error"] == cpu["test_error"]
    assert cuda["rkhs_norm"] == pytest.approx(cpu["rkhs_norm"], rel=1e-9)
