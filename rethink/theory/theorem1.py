"""Theorem 1 of Zhang et al. 2017: a two-layer ReLU network with 2n + d weights fits any targets
on any n distinct points in d dimensions.

    c(x) = sum_j w_j relu(<a, x> - b_j)

Project the points on a direction a in which they are distinct, sort the projections z, and put
a threshold b_j just below each: b_1 < z_1 < b_2 < z_2 < ... < b_n < z_n. Then relu(z_i - b_j) is
zero for j > i: the system is lower triangular with a positive diagonal, and forward substitution
solves it. Since c(z_i) = z_i S_{i-1} - T_{i-1} + w_i (z_i - b_i), with S and T the prefix sums of
w and of w b, the substitution is a recurrence on prefix sums: O(n log n) time for the sort,
O(n) memory, no n x n matrix.

The system is badly conditioned: the smallest gap between projections shrinks like 1/n^2 of
their spread, and the weights grow like its inverse. Two choices keep the fit exact anyway:
integer inputs (images) are projected on an integer direction, so that every projection, gap and
threshold is exact in int64 and float64; and the prefix sums, and the evaluation of the network,
accumulate in extended precision (numpy.longdouble).
"""

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rethink import RethinkError
from rethink.data.h5io import read_dataset
from rethink.data.variants import make_variant
from rethink.files import atomic_path

log = logging.getLogger(__name__)

# Entries of the integer direction a: |<a, x>| <= d x 255 x 2^20 < 2^53 for d <= 33 million
# uint8 pixels, so projections are exact in float64 as well.
DIRECTION_BITS = 20


class DuplicatePointsError(RethinkError):
    """Two points have the same projection: they are equal, or the direction failed."""


@dataclass
class TwoLayerNetwork:
    """c(x) = relu(x @ a - b) @ w: 2n + d weights per output (a shared by all outputs)."""

    a: np.ndarray  # (d,) the direction: int64 for integer inputs, float64 otherwise
    b: np.ndarray  # (n,) the thresholds, increasing
    w: np.ndarray  # (n, k) the output weights

    @property
    def n_weights(self) -> int:
        """2n + d for one output; k outputs share a and b, so n(k + 1) + d in all."""
        return self.a.size + self.b.size + self.w.size

    def project(self, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """<a, x> for each row of x: exact (int64) for integer inputs. Converted `chunk` rows at
        a time, so that uint8 images are never all held as int64."""
        flat = x.reshape(len(x), -1)
        return np.concatenate(
            [flat[i : i + chunk].astype(self.a.dtype) @ self.a for i in range(0, len(x), chunk)]
        )

    def __call__(self, x: np.ndarray, chunk: int = 512) -> np.ndarray:
        """The network's outputs for the rows of x, (len(x), k), in extended precision: each
        hidden unit relu(<a, x> - b_j) in float64 (exact for integer inputs), the weighted sum
        accumulated in longdouble, `chunk` rows at a time."""
        return self.evaluate(self.project(x), chunk)

    def evaluate(self, projections: np.ndarray, chunk: int = 512) -> np.ndarray:
        """The outputs for points whose projections <a, x> are known (see __call__)."""
        z = projections.astype(np.float64)
        order = np.argsort(z)  # in increasing z, a chunk needs only the thresholds below it
        w = self.w.astype(np.longdouble)
        out = np.empty((len(z), w.shape[1]), dtype=np.longdouble)
        for start in range(0, len(z), chunk):
            rows = order[start : start + chunk]
            active = np.searchsorted(self.b, z[rows[-1]])  # relu(z - b_j) = 0 from here on
            hidden = np.maximum(z[rows, None] - self.b[None, :active], 0.0)
            out[rows] = hidden.astype(np.longdouble) @ w[:active]
        return out


def fit_two_layer(x: np.ndarray, y: np.ndarray, seed: int = 0) -> TwoLayerNetwork:
    """The Theorem 1 network with c(x_i) = y_i for every row x_i of `x` (n points, any shape
    per point) and target y_i (a number, or a vector such as a one-hot class)."""
    n = len(x)
    targets = np.asarray(y, dtype=np.float64).reshape(n, -1)
    rng = np.random.default_rng(seed)
    d = int(np.prod(x.shape[1:]))
    if np.issubdtype(x.dtype, np.integer):
        a = rng.integers(-(2**DIRECTION_BITS), 2**DIRECTION_BITS, d, dtype=np.int64, endpoint=True)
    else:
        a = rng.standard_normal(d)
    network = TwoLayerNetwork(a=a, b=np.empty(0), w=np.empty((0, targets.shape[1])))
    z = network.project(x)
    order = np.argsort(z, kind="stable")
    z = z[order].astype(np.float64)
    repeated = np.flatnonzero(np.diff(z) == 0)
    if repeated.size:
        i, j = order[repeated[0]], order[repeated[0] + 1]
        raise DuplicatePointsError(
            f"points {min(i, j)} and {max(i, j)} have the same projection"
            f"{' (they are equal)' if np.array_equal(x[i], x[j]) else ''}; "
            f"{repeated.size} pair(s) in all. Theorem 1 needs distinct points: drop duplicates"
        )
    network.b = np.concatenate([[z[0] - 1.0], (z[:-1] + z[1:]) / 2])
    network.w = _forward_substitution(z, network.b, targets[order])
    return network


def _forward_substitution(z: np.ndarray, b: np.ndarray, y: np.ndarray) -> np.ndarray:
    """w with sum_{j <= i} w_j (z_i - b_j) = y_i for every i, by the prefix-sum recurrence.
    Each w_i is solved against the network as rounded so far, so rounding does not compound."""
    w = np.empty_like(y)
    s = np.zeros(y.shape[1], dtype=np.longdouble)  # sum of w_j, j < i
    t = np.zeros(y.shape[1], dtype=np.longdouble)  # sum of w_j b_j, j < i
    for i in range(len(z)):
        so_far = np.longdouble(z[i]) * s - t
        w[i] = (y[i] - so_far) / np.longdouble(z[i] - b[i])
        s += w[i]
        t += w[i].astype(np.longdouble) * np.longdouble(b[i])
    return w


def smallest_gap(projections: np.ndarray) -> float:
    """The smallest distance between two projections, relative to their spread: how badly
    conditioned the network is (it shrinks like 1/n^2)."""
    z = np.sort(projections.astype(np.float64))
    return float(np.diff(z).min() / (z[-1] - z[0]))


def theorem1_fit(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """Fit integer class labels with the Theorem 1 network and measure the fit honestly, by
    evaluating the network: the largest |c(x_i) - y_i| and whether rounding c(x_i) recovers
    every label."""
    started = time.perf_counter()
    network = fit_two_layer(images, labels, seed)
    fitted = time.perf_counter()
    projections = network.project(images)  # once, for the evaluation and the gap
    outputs = network.evaluate(projections)[:, 0]
    evaluated = time.perf_counter()
    errors = np.abs(outputs - labels.astype(np.longdouble))
    n, d = len(images), int(np.prod(images.shape[1:]))
    return {
        "n": n,
        "d": d,
        "weights": network.n_weights,  # 2n + d: one output
        "max_error": float(errors.max()),
        "labels_recovered": bool(np.all(np.rint(outputs) == labels)),
        "smallest_gap": smallest_gap(projections),
        "max_abs_weight": float(np.abs(network.w).max()),
        "fit_seconds": fitted - started,
        "eval_seconds": evaluated - fitted,
    }


def write_theorem1_table(
    dataset_path: str, output_path: str, label_seed: int, direction_seed: int
) -> pd.DataFrame:
    """results/theory/{dataset}.csv: Theorem 1 on the dataset's training images with the labels
    of its `random` variant (the same seed, so the same labels)."""
    dataset = read_dataset(dataset_path)
    relabeled = make_variant(dataset, "random", label_seed)
    row = theorem1_fit(relabeled.train.images, relabeled.train.labels, direction_seed)
    log.info("Theorem 1 on %s: %s", dataset_path, row)
    table = pd.DataFrame([{"labels": "random", **row}])
    with atomic_path(output_path) as tmp:
        table.to_csv(tmp, index=False)
    return table
