"""training.precision and training.compile: what each computes in, what a run records, what
decides a rerun, and compiled training on the CPU (bounded compilations, a disk cache)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from rethink.training.batches import InMemoryBatches, load_data
from rethink.training.context import Context, Process
from rethink.training.loop import make_model, train_epoch, train_run
from rethink.training.optimizers import make_optimizer
from rethink.training.precision import (
    PrecisionError,
    autocast,
    resolve_precision,
    set_matmul_precision,
)
from rethink.training.settings import RunConfig
from tests.conftest import REPO

CPU = torch.device("cpu")


def test_auto_is_bf16_on_the_cpu_and_fp32_on_cuda_and_tf32_needs_cuda():
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    assert resolve_precision("tf32", torch.device("cuda", 1)) == "tf32"
    with pytest.raises(PrecisionError, match="'tf32' needs a CUDA GPU; this run is on cpu"):
        resolve_precision("tf32", CPU)


def test_precision_and_compile_decide_a_rerun_but_the_device_does_not():
    base = RunConfig("mlp1x512", precision="fp32")
    hashes = {
        RunConfig("mlp1x512", precision=p, compile=c).config_hash()
        for p in ("fp32", "bf16", "auto") for c in (False, True)
    }  # fmt: skip
    assert len(hashes) == 6
    assert RunConfig("mlp1x512", precision="fp32", device="cuda").config_hash() == (
        base.config_hash()
    )


@pytest.mark.parametrize(
    ("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)]
)
def test_bf16_computes_products_in_bfloat16_and_keeps_everything_else_float32(
    variants, precision, dtype, monkeypatch
):
    config = RunConfig("alexnet", precision=precision, train_subset=256, device="cpu")
    data = load_data(variants["true"], config, CPU)
    model = make_model(config, data.train_inputs.shape[1:], data.n_classes, CPU)
    data = data.in_memory_format(torch.channels_last)
    optimizer = make_optimizer(config, model)
    seen = set()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            module.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    losses_in = []
    cross_entropy = torch.nn.functional.cross_entropy
    monkeypatch.setattr(
        torch.nn.functional, "cross_entropy",
        lambda logits, *a, **k: losses_in.append(logits.dtype) or cross_entropy(logits, *a, **k),
    )  # fmt: skip
    context = Context(CPU, precision, Process())
    train_epoch(model, optimizer, InMemoryBatches(data, config).train(0), context)
    assert seen == {dtype}
    assert set(losses_in) == {torch.float32}  # the loss and its softmax
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {p.grad.dtype for p in model.parameters()} == {torch.float32}
    momenta = [s["momentum_buffer"] for s in optimizer.state.values()]
    assert momenta and {m.dtype for m in momenta} == {torch.float32}
    with autocast(precision, CPU):  # what a forward pass runs in, for evaluation and probes
        assert model(data.test_inputs[:2]).dtype == dtype


def test_a_run_records_the_precision_it_resolved_to(variants, tmp_path):
    config = RunConfig("mlp1x512", train_subset=256, test_subset=128, max_epochs=2, device="cpu")
    summary = train_run(variants["random"], tmp_path, config)
    assert summary["precision"] == "bf16" and summary["config"]["precision"] == "auto"
    assert summary["compile"] is False and "compile_seconds" not in summary


COMPILED_RUN = """
import json, sys
from rethink.training.loop import train_run
from rethink.training.settings import RunConfig
config = RunConfig("mlp1x512", train_subset=500, test_subset=300, max_epochs=3, device="cpu",
                   eval_batch_size=256, compile=True, precision="fp32")
print(json.dumps(train_run(sys.argv[1], sys.argv[2], config)))
"""


@pytest.mark.slow
def test_compiled_training_matches_eager_and_caches_its_compilation(variants, tmp_path):
    """500 images: batches of 128 and a last one of 116, evaluation batches of 256, 244 and 44,
    each compiled once (more would fail: no silent fallback); a second process compiles from
    the disk cache; the history is the eager one up to rounding."""
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    summaries = []
    for run in ("first", "second"):
        result = subprocess.run(
            [sys.executable, "-c", COMPILED_RUN, str(variants["true"]), str(tmp_path / run)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        summaries.append(json.loads(result.stdout.splitlines()[-1]))
    first, second = summaries
    assert first["compile"] and first["compile_seconds"] > 0
    assert second["compile_seconds"] < 0.6 * first["compile_seconds"]
    assert any((tmp_path / "cache").iterdir())
    eager = RunConfig(**{**first["config"], "compile": False})
    train_run(variants["true"], tmp_path / "eager", eager)
    compiled = pd.read_csv(tmp_path / "first" / "history.csv")
    reference = pd.read_csv(tmp_path / "eager" / "history.csv")
    for column in ("train_loss", "train_acc", "test_acc"):
        assert compiled[column].to_numpy() == pytest.approx(reference[column], abs=0.01)


@pytest.fixture
def tf32_flags():
    """cuBLAS's and cuDNN's TF32 switches (they exist without a GPU), restored afterwards."""
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn)
    saved = [f.allow_tf32 for f in flags]
    yield flags
    for f, value in zip(flags, saved, strict=True):
        f.allow_tf32 = value


@pytest.mark.parametrize(("precision", "tf32"), [("fp32", False), ("tf32", True), ("bf16", False)])
def test_tf32_is_on_exactly_when_asked_for_on_cuda(precision, tf32, tf32_flags):
    """PyTorch lets cuDNN use TF32 by default: fp32 switches it off, for cuBLAS and cuDNN
    alike; a CPU run leaves them alone."""
    for flags in tf32_flags:
        flags.allow_tf32 = not tf32
    set_matmul_precision(precision, torch.device("cuda"))
    assert [flags.allow_tf32 for flags in tf32_flags] == [tf32, tf32]
    tf32_flags[1].allow_tf32 = True
    set_matmul_precision("fp32", CPU)
    assert tf32_flags[1].allow_tf32
