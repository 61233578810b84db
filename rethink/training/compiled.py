"""Compiled training (`training.compile`): the model through torch.compile, on CUDA captured as
CUDA graphs ("reduce-overhead"), so that a step launches a few graphs instead of hundreds of
kernels and never waits for the host.

Shapes are static: each batch size and mode (training, evaluation) compiles once, the last,
smaller batch of an epoch included, and a run that would need more compilations than dynamo's
limit fails instead of silently falling back to eager execution. Compiled code is cached on disk
(TORCHINDUCTOR_CACHE_DIR, by default .snakemake/torch-compile/ in the working directory, which
a cluster's nodes share), so the runs of one model after the first compile in seconds.
"""

import os
from pathlib import Path

import torch

CACHE_DIR = Path(".snakemake") / "torch-compile"

# dynamo's timers of a forward compilation and of a backward one (torch._dynamo.utils)
_COMPILE_TIMERS = ("_compile.compile_inner", "compile_fx.<locals>.bw_compiler")


def compile_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` compiled for `device`; it shares its parameters (and state_dict) with `model`.
    One compiled model per process at a time: earlier ones are discarded."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(CACHE_DIR.resolve()))
    torch._dynamo.reset()  # a model compiled before in this process (a benchmark's) counts no more
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    mode = "reduce-overhead" if device.type == "cuda" else "default"
    return torch.compile(model, mode=mode, dynamic=False, fullgraph=True)


def step_begins(device: torch.device) -> None:
    """Tell CUDA graphs a new training step begins (the previous step's outputs may be
    overwritten); nothing elsewhere."""
    if device.type == "cuda":
        torch.compiler.cudagraph_mark_step_begin()


def compile_seconds() -> float:
    """Seconds this process has spent compiling, forward and backward graphs."""
    metrics = torch._dynamo.utils.compilation_time_metrics
    return sum(sum(metrics.get(timer, [])) for timer in _COMPILE_TIMERS)
