"""The torch device a job or benchmark runs on, set up the same way everywhere.

A job on "auto" or "cuda" runs on the GPUs the workflow claimed for it first
(rethink.workflow.gpus narrows CUDA_VISIBLE_DEVICES to them); importing torch does not
initialize CUDA, pick_device does, after the claim.
"""

import os

import torch

# cuBLAS picks reduction orders per call unless its workspace is fixed (CUDA >= 10.2): the
# setting PyTorch's reproducibility notes give; read when cuBLAS starts, so set before that.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def setup_device(name: str, threads: int, deterministic: bool = True) -> torch.device:
    """The device `name` resolves to, with torch set up for it as every job and benchmark runs:
    `threads` CPU threads; on CUDA, either deterministic algorithms (same seed, same numbers on
    the same GPU and software) or cuDNN's autotuner (fastest kernels, run-to-run noise)."""
    torch.set_num_threads(threads)
    device = pick_device(name)
    if device.type == "cuda":
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
        # warn_only: an op without a deterministic CUDA kernel warns (in the job's log) rather
        # than failing a run; the cuda-marked tests turn such a warning into a failure.
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
        if device.index is not None:
            torch.cuda.set_device(device)
    return device
