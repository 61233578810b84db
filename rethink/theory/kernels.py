"""Section 5 of the paper: minimum-norm interpolation with a Gaussian kernel.

Solving K alpha = Y exactly (no regularization) fits any labels, random ones included, and
f(x) = sum_i alpha_i k(x_i, x) is the interpolant of least RKHS norm ||f|| = sqrt(tr(alpha^T K
alpha)). The paper's point: the norm does not predict the test error.

The kernel matrix is built in blocks, in float64, on a GPU through torch when there is one, and
factored by Cholesky. Inputs are the pixels / 255, flattened; k(x, x') = exp(-gamma ||x - x'||^2)
with the first author's gamma = 0.02.
"""

import logging
import os
import resource
import time

import numpy as np
import pandas as pd
import torch

from rethink import RethinkError
from rethink.data.h5io import read_dataset
from rethink.data.variants import label_corruption
from rethink.device import setup_device
from rethink.files import atomic_path

log = logging.getLogger(__name__)


def gaussian_kernel(
    x: torch.Tensor, y: torch.Tensor, gamma: float, block: int = 4096
) -> torch.Tensor:
    """exp(-gamma ||x_i - y_j||^2), (len(x), len(y)), `block` rows at a time."""
    out = torch.empty(len(x), len(y), dtype=x.dtype, device=x.device)
    y_sq = (y * y).sum(dim=1)
    for start in range(0, len(x), block):
        rows = x[start : start + block]
        sq = (rows * rows).sum(dim=1, keepdim=True) + y_sq - 2 * rows @ y.T
        out[start : start + block] = torch.exp(-gamma * sq.clamp_min_(0))
    return out


class KernelMemoryError(RethinkError):
    """The kernel matrix and its factor do not fit in the device's memory."""


def kernel_bytes(n: int) -> int:
    """The n x n float64 kernel matrix and its Cholesky factor, held together."""
    return 2 * 8 * n * n


def available_memory_bytes(meminfo: str = "/proc/meminfo") -> int:
    """Memory a new allocation can get without swapping: Linux's MemAvailable, which counts the
    page cache the kernel drops on demand (MemFree does not: after reading a large dataset it
    can be a small part of what is usable)."""
    try:
        with open(meminfo) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["MemAvailable"].split()[0]) * 1024  # kB
    except (OSError, KeyError, ValueError):  # not Linux, or a kernel older than 3.14
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(n: int, device: torch.device) -> None:
    """Fail before any work when the system cannot fit in memory, saying what it needs."""
    if device.type == "cuda":
        available = torch.cuda.mem_get_info(device)[0]
    else:
        available = available_memory_bytes()
    needed = kernel_bytes(n)
    if needed > available:
        raise KernelMemoryError(
            f"the kernel system of {n:,} training images needs {needed / 1e9:.1f} GB (the "
            f"float64 kernel matrix and its Cholesky factor); {device} has "
            f"{available / 1e9:.1f} GB free. Run it where {needed / 1e9:.0f} GB are free "
            "(config key kernels.device: a GPU with that much memory), or on fewer images"
        )


def _inputs(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(images.reshape(len(images), -1)).to(device, torch.float64) / 255


def min_norm_interpolation(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    gamma: float = 0.02,
    device: str = "auto",
    threads: int = 1,
) -> dict:
    """Fit one-hot labels exactly with the Gaussian kernel on `threads` CPU threads or a GPU;
    return train and test error, the RKHS norm of the interpolant, seconds (from the data's
    arrival on the device to the errors, set-up excluded) and peak memory."""
    dev = setup_device(device, threads)
    check_memory(len(train_images), dev)
    started = time.perf_counter()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    x_train, x_test = _inputs(train_images, dev), _inputs(test_images, dev)
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    targets = torch.nn.functional.one_hot(torch.from_numpy(train_labels).long(), n_classes)
    targets = targets.to(dev, torch.float64)

    gram = gaussian_kernel(x_train, x_train, gamma)
    factor = torch.linalg.cholesky(gram)
    alpha = torch.cholesky_solve(targets, factor)
    del factor
    fitted = gram @ alpha  # evaluated, not assumed: K alpha as the interpolant computes it
    rkhs_norm = torch.sqrt((alpha * fitted).sum()).item()
    del gram
    predicted = gaussian_kernel(x_test, x_train, gamma) @ alpha

    def error(outputs: torch.Tensor, labels: np.ndarray) -> float:
        return float((outputs.argmax(dim=1).cpu().numpy() != labels).mean())

    if dev.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "n_train": len(train_images),
        "n_test": len(test_images),
        "gamma": gamma,
        "train_error": error(fitted, train_labels),
        "test_error": error(predicted, test_labels),
        "max_fit_residual": (fitted - targets).abs().max().item(),
        "rkhs_norm": rkhs_norm,
        "seconds": time.perf_counter() - started,
        "peak_memory_mb": peak_mb,
        "device": str(dev),
    }


def write_kernel_result(
    variant_path: str, output_path: str, gamma: float, device: str = "auto", threads: int = 1
) -> pd.DataFrame:
    """results/kernels/{dataset}/{variant}.csv: one row."""
    data = read_dataset(variant_path)
    variant = data.attrs.get("variant", "")
    result = min_norm_interpolation(
        data.train.images, data.train.labels, data.test.images, data.test.labels, gamma, device,
        threads,
    )  # fmt: skip
    log.info("%s: %s", variant_path, result)
    row = {"variant": variant, "p": label_corruption(variant), **result}
    table = pd.DataFrame([row])
    with atomic_path(output_path) as tmp:
        table.to_csv(tmp, index=False)
    return table
