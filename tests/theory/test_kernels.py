"""Minimum-norm Gaussian-kernel interpolation (Section 5): any labels fitted exactly; on real
digits it generalizes with true labels and not with random ones."""

import time

import numpy as np
import pandas as pd
import pytest
import torch

import rethink.theory.kernels
from rethink.data.h5io import write_dataset
from rethink.data.variants import make_variant
from rethink.theory.kernel_report import write_kernel_report
from rethink.theory.kernels import (
    KernelMemoryError,
    available_memory_bytes,
    check_memory,
    gaussian_kernel,
    kernel_bytes,
    min_norm_interpolation,
    write_kernel_result,
)


def test_gaussian_kernel_matches_its_definition():
    rng = np.random.default_rng(0)
    x, y = torch.from_numpy(rng.random((7, 5))), torch.from_numpy(rng.random((3, 5)))
    expected = np.exp(-0.3 * ((x.numpy()[:, None, :] - y.numpy()[None]) ** 2).sum(-1))
    np.testing.assert_allclose(gaussian_kernel(x, y, 0.3, block=2).numpy(), expected, rtol=1e-12)


def test_random_labels_on_random_images_are_interpolated_exactly():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (600, 8, 8, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, 600)
    result = min_norm_interpolation(
        images[:500], labels[:500], images[500:], labels[500:], device="cpu"
    )
    assert result["train_error"] == 0 and result["max_fit_residual"] < 1e-8
    assert result["test_error"] > 0.7  # nothing to learn
    assert result["rkhs_norm"] > 0 and result["device"] == "cpu"


def read_results(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"variant": str})


@pytest.fixture(scope="module")
def kernel_results(mnist5k, tmp_path_factory):
    """The job's own function on the true and random variants of the embedded digits."""
    root = tmp_path_factory.mktemp("kernels")
    paths = []
    for name in ("true", "corrupt0.5", "random"):
        write_dataset(root / f"{name}.h5", make_variant(mnist5k, name, seed=0))
        paths.append(root / "results" / f"{name}.csv")
        write_kernel_result(str(root / f"{name}.h5"), str(paths[-1]), gamma=0.02, device="cpu")
    return root, paths


def test_mnist5k_true_labels_generalize_and_random_ones_do_not(kernel_results):
    _, paths = kernel_results
    rows = {row["variant"]: row for p in paths for row in read_results(p).to_dict("records")}
    assert all(row["train_error"] == 0 for row in rows.values())
    assert rows["true"]["test_error"] < 0.05  # 1.2% on the full 60k MNIST in the paper
    assert rows["random"]["test_error"] > 0.8  # chance is 90%
    assert rows["true"]["rkhs_norm"] < rows["corrupt0.5"]["rkhs_norm"] < rows["random"]["rkhs_norm"]
    assert rows["corrupt0.5"]["p"] == 0.5 and rows["random"]["p"] == 1.0


def test_kernel_report_writes_the_table_and_the_figure_with_its_data(kernel_results):
    root, paths = kernel_results
    out = {kind: root / f"figure.{kind}" for kind in ("png", "pdf", "csv")}
    write_kernel_report([str(p) for p in paths], "mnist5k", str(root / "table.csv"), out)
    table = read_results(root / "table.csv")
    assert table.variant.tolist() == ["true", "corrupt0.5", "random"]
    assert table.p.tolist() == [0.0, 0.5, 1.0] and (table.dataset == "mnist5k").all()
    data = pd.read_csv(out["csv"])
    assert data.rkhs_norm.tolist() == table.rkhs_norm.tolist()
    assert out["png"].read_bytes()[:4] == b"\x89PNG" and out["pdf"].read_bytes()[:4] == b"%PDF"


def test_a_system_too_large_for_memory_fails_before_any_work():
    with pytest.raises(KernelMemoryError, match=r"2,000,000 training images needs 64000.0 GB"):
        check_memory(2_000_000, torch.device("cpu"))
    assert kernel_bytes(60_000) == 57_600_000_000  # MNIST: more than this machine's 24 GB
    check_memory(4000, torch.device("cpu"))  # mnist5k: 256 MB


def test_the_memory_check_reads_available_memory_not_free_memory(tmp_path):
    """After a large file is read, most of the memory is page cache: not free, yet available."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(
        "MemTotal:       24000000 kB\nMemFree:          300000 kB\n"
        "MemAvailable:   20000000 kB\nCached:         19000000 kB\n"
    )
    assert available_memory_bytes(str(meminfo)) == 20_000_000 * 1024
    assert available_memory_bytes() > 0  # this machine's


def test_the_fit_uses_the_jobs_threads_and_times_the_work_only(monkeypatch):
    """The job's `threads` set torch's thread count, and the time reported starts once the
    device is set up (on a GPU that takes seconds that are no part of the fit)."""
    real_setup = rethink.theory.kernels.setup_device

    def slow_setup(*args):
        time.sleep(2)
        return real_setup(*args)

    monkeypatch.setattr(rethink.theory.kernels, "setup_device", slow_setup)
    before = torch.get_num_threads()
    try:
        rng = np.random.default_rng(2)
        images, labels = (
            rng.integers(0, 256, (300, 4, 4, 1), dtype=np.uint8),
            rng.integers(0, 2, 300),
        )
        result = min_norm_interpolation(images, labels, images, labels, device="cpu", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert result["seconds"] < 2
