"""Numeric precision of training (`training.precision`).

- fp32: float32 throughout, the paper's. On CUDA, TF32 is switched off explicitly (PyTorch lets
  cuDNN convolutions use it by default), so results do not depend on PyTorch's defaults.
- tf32: float32 storage, TensorFloat-32 matrix products and convolutions; CUDA only.
- bf16: autocast to bfloat16 for matrix products and convolutions; weights, gradients, optimizer
  state, the loss and softmax stay float32.
- auto: bf16 on the CPU, fp32 on CUDA. On this project's CPU, bf16 fits every run of the default
  study that fp32 fits, 1.3-3x faster per step (docs/speed.md#precision); on a GPU its fidelity
  has not been measured yet, so CUDA keeps the paper's float32.
"""

import contextlib

import torch

from rethink import RethinkError

PRECISIONS = ("auto", "fp32", "tf32", "bf16")


class PrecisionError(RethinkError):
    """A precision the device cannot run."""


def resolve_precision(name: str, device: torch.device) -> str:
    """The precision `name` means on `device`: auto resolved, tf32 refused off CUDA."""
    if name not in PRECISIONS:
        raise PrecisionError(f"unknown precision '{name}'; known: {', '.join(PRECISIONS)}")
    if name == "auto":
        return "fp32" if device.type == "cuda" else "bf16"
    if name == "tf32" and device.type != "cuda":
        raise PrecisionError(
            f"training.precision 'tf32' needs a CUDA GPU; this run is on {device.type}: "
            "use bf16 or fp32 there"
        )
    return name


def set_matmul_precision(precision: str, device: torch.device) -> None:
    """Allow TF32 on CUDA exactly when asked for (cuBLAS and cuDNN alike)."""
    if device.type == "cuda":
        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def autocast(precision: str, device: torch.device):
    """The context a forward pass runs in: bf16 autocast, or nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
