"""Theorem 1: the 2n + d weight ReLU network fits any labels on n distinct points exactly."""

import time
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from rethink.data.h5io import write_dataset
from rethink.data.variants import make_variant
from rethink.theory.theorem1 import (
    DuplicatePointsError,
    fit_two_layer,
    smallest_gap,
    theorem1_fit,
    write_theorem1_table,
)


def random_images(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, d), dtype=np.uint8)


def test_random_labels_on_random_images_are_fitted_exactly():
    images = random_images(3000, 200)
    labels = np.random.default_rng(1).integers(0, 10, len(images))
    fit = theorem1_fit(images, labels)
    assert fit["labels_recovered"]
    assert fit["max_error"] < 1e-6
    assert (fit["n"], fit["d"], fit["weights"]) == (3000, 200, 2 * 3000 + 200)


def test_any_real_targets_on_real_valued_points():
    points = np.random.default_rng(2).standard_normal((500, 30))
    targets = np.random.default_rng(3).standard_normal(500) * 100
    network = fit_two_layer(points, targets)
    assert network.n_weights == 2 * 500 + 30
    np.testing.assert_allclose(network(points)[:, 0].astype(float), targets, atol=1e-6)


def test_vector_targets_share_the_direction_and_thresholds():
    images = random_images(1000, 50)
    labels = np.random.default_rng(4).integers(0, 10, 1000)
    one_hot = np.eye(10)[labels]
    network = fit_two_layer(images, one_hot)
    assert network.a.shape == (50,) and network.b.shape == (1000,) and network.w.shape == (1000, 10)
    assert network.n_weights == 1000 * (10 + 1) + 50
    outputs = network(images).astype(float)
    assert np.abs(outputs - one_hot).max() < 1e-6
    assert (outputs.argmax(axis=1) == labels).all()


def test_the_network_is_what_a_naive_dense_evaluation_computes():
    """sum_j w_j relu(<a, x> - b_j) written out over every (point, unit) pair in exact rational
    arithmetic, independently of the network's own sorted, chunked evaluator: on small inputs
    the two agree and both fit the labels."""
    images = random_images(150, 12, seed=5)
    labels = np.random.default_rng(6).integers(0, 10, 150)
    network = fit_two_layer(images, labels)
    z = [int(v) for v in images.astype(np.int64) @ network.a]  # exact: integer direction
    units = [
        (Fraction(float(b)), Fraction(float(w)))
        for b, w in zip(network.b, network.w[:, 0], strict=True)
    ]
    exact = np.array([float(sum((zi - b) * w for b, w in units if zi > b)) for zi in z])
    assert len(units) == 150 and network.n_weights == 2 * 150 + 12
    np.testing.assert_allclose(exact, labels, rtol=0, atol=1e-8)
    np.testing.assert_allclose(network(images)[:, 0].astype(float), exact, rtol=0, atol=1e-8)


def test_smallest_gap_is_relative_to_the_spread():
    assert smallest_gap(np.array([4, 0, 10, 3])) == pytest.approx(0.1)  # gap 1 in a spread of 10
    assert smallest_gap(np.array([-5, 5, 1])) == pytest.approx(0.4)


def test_the_direction_seed_picks_the_direction_and_the_times_are_measured():
    images = random_images(400, 30)
    labels = np.random.default_rng(7).integers(0, 10, 400)
    started = time.perf_counter()
    fits = [theorem1_fit(images, labels, seed) for seed in (0, 0, 1)]
    elapsed = time.perf_counter() - started
    assert fits[0]["smallest_gap"] == fits[1]["smallest_gap"] != fits[2]["smallest_gap"]
    for fit in fits:
        assert 0 < fit["fit_seconds"] < elapsed and 0 < fit["eval_seconds"] < elapsed


def test_thresholds_interleave_the_sorted_projections():
    images = random_images(200, 20)
    network = fit_two_layer(images, np.zeros(200))
    z = np.sort(network.project(images).astype(float))
    assert (network.b < z).all() and (z[:-1] < network.b[1:]).all()


def test_duplicate_points_are_named():
    images = random_images(100, 20)
    images[57] = images[12]
    with pytest.raises(DuplicatePointsError, match=r"points 12 and 57 .*\(they are equal\)"):
        fit_two_layer(images, np.arange(100))


def test_mnist5k_random_labels_are_fitted_to_the_precision_readme_claims(mnist5k, tmp_path):
    """The real embedded digits with the `random` variant's labels, through the job's own
    function and its CSV."""
    dataset_path, table_path = tmp_path / "mnist5k.h5", tmp_path / "theory" / "mnist5k.csv"
    write_dataset(dataset_path, mnist5k)
    write_theorem1_table(str(dataset_path), str(table_path), label_seed=0, direction_seed=0)
    table = pd.read_csv(table_path)
    assert list(table.columns) == [
        "labels", "n", "d", "weights", "max_error", "labels_recovered", "smallest_gap",
        "max_abs_weight", "fit_seconds", "eval_seconds",
    ]  # fmt: skip
    (row,) = table.to_dict("records")
    assert row["labels"] == "random" and row["labels_recovered"]
    assert (row["n"], row["d"], row["weights"]) == (4000, 784, 2 * 4000 + 784)
    assert row["max_error"] <= 1e-6  # docs/science.md: 1.4e-7
    assert 0 < row["smallest_gap"] < 1 / 4000  # relative to the spread: ~1/n^2
    # The config's direction seed decides the direction: another seed, another; the same, the same.
    for seed, name in ((1, "seed1"), (0, "again")):
        write_theorem1_table(
            str(dataset_path), str(tmp_path / name), label_seed=0, direction_seed=seed
        )
    gaps = {name: pd.read_csv(tmp_path / name).smallest_gap[0] for name in ("seed1", "again")}
    assert gaps["again"] == row["smallest_gap"] != gaps["seed1"]
    random_labels = make_variant(mnist5k, "random", seed=0).train.labels
    assert np.mean(random_labels == mnist5k.train.labels) < 0.2  # truly relabeled
