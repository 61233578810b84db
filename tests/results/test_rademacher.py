"""Random signs (`rademacher{k}` variants) and the Rademacher complexity estimate 2 acc - 1."""

import numpy as np
from scipy.special import comb
import pandas as pd
import pytest

from rethink.data.h5io import write_dataset
from rethink.results.rademacher import deviation, rademacher_table, write_rademacher_table
from rethink.training.loop import train_run
from rethink.training.settings import RunConfig
from rethink.data.variants import RADEMACHER_CLASSES, label_corruption, make_variant, parse_variant


def test_random_signs_are_fair_independent_draws_on_unchanged_images(mnist5k):
    first, second = (make_variant(mnist5k, f"rademacher{k}", seed=0) for k in (1, 2))
    assert first.classes == RADEMACHER_CLASSES == ["-1", "+1"]
    n = len(first.train.labels)
    for labels in (first.train.labels, second.train.labels, first.test.labels):
        assert set(np.unique(labels)) == {0, 1}
    # Fair coins: within 4 standard errors of 1/2, and the two draws agree on half the points.
    assert abs(first.train.labels.mean() - 0.5) < 4 * 0.5 / np.sqrt(n)
    assert abs(np.mean(first.train.labels == second.train.labels) - 0.5) < 4 * 0.5 / np.sqrt(n)
    np.testing.assert_array_equal(first.train.images, mnist5k.train.images)
    again = make_variant(mnist5k, "rademacher1", seed=0)
    np.testing.assert_array_equal(again.train.labels, first.train.labels)
    assert parse_variant("rademacher").rademacher and np.isnan(label_corruption("rademacher3"))


def test_the_estimate_is_twice_the_training_accuracy_minus_one_and_the_bound_mcdiarmids():
    runs = pd.DataFrame(
        {
            "model": ["mlp1x512"] * 4 + ["alexnet"],
            "regularizer": "none",
            "variant": ["rademacher1", "rademacher1", "rademacher2", "true", "rademacher1"],
            "train_acc": [1.0, 0.9, 0.9, 1.0, 0.75],
            "test_acc": [0.5, 0.5, 0.48, 0.95, 0.51],
            "train_images": [4000, 4000, 4000, 4000, 1000],
        }
    )
    table = rademacher_table(runs).set_index("model")
    assert table.loc["mlp1x512", "draws"] == 2  # the true-label run is not a draw
    assert table.loc["mlp1x512", "runs"] == 3  # two seeds of the first draw
    # Seeds averaged within a draw first: draw 1 gives 0.9, draw 2 gives 0.8.
    assert table.loc["mlp1x512", "complexity_estimate"] == pytest.approx(0.85)
    assert table.loc["mlp1x512", "smallest_draw"] == pytest.approx(0.8)
    assert table.loc["alexnet", "complexity_estimate"] == pytest.approx(0.5)
    # McDiarmid at 95%: sqrt(2 ln 20 / (n K)); one draw of 4,000 signs gives 0.0387.
    assert table.loc["mlp1x512", "deviation_95"] == pytest.approx(np.sqrt(2 * np.log(20) / 8000))
    assert table.loc["alexnet", "deviation_95"] == pytest.approx(np.sqrt(2 * np.log(20) / 1000))
    assert deviation(4000, 1) == pytest.approx(0.0387, abs=5e-5)
    bound = table.complexity_estimate - table.deviation_95
    assert table.complexity_lower_bound_95.tolist() == pytest.approx(bound.tolist())


def test_the_bound_holds_on_simulated_draws_as_often_as_it_claims():
    """A class whose sup over h of the correlation is known: the 2^m labelings of m blocks of
    n / m points (h constant on each block). Its complexity is E|block sum| / n, exactly, and
    the bound from K draws falls below it in at least 95% of simulated studies."""
    rng = np.random.default_rng(0)
    n, m, draws = 400, 40, 2
    block = n // m
    k = np.arange(block + 1)
    exact = m * np.sum(np.abs(2 * k - block) * comb(block, k) / 2**block) / n
    studies = rng.choice([-1, 1], size=(2000, draws, m, block)).sum(axis=-1)
    estimates = np.abs(studies).sum(axis=-1).mean(axis=-1) / n
    assert np.mean(estimates - deviation(n, draws) <= exact) >= 0.95
    assert np.mean(estimates - deviation(n, draws) / 4 <= exact) < 0.95  # not trivially loose


@pytest.mark.slow
def test_an_mlp_fits_random_signs_so_the_bound_is_one(mnist5k, tmp_path):
    variant = tmp_path / "rademacher1.h5"
    write_dataset(variant, make_variant(mnist5k, "rademacher1", seed=0))
    config = RunConfig("mlp1x512", train_subset=1000, max_epochs=300, device="cpu")
    summary = train_run(variant, tmp_path / "run", config)
    assert summary["fitted"] and summary["params"] == 784 * 512 + 512 + 512 * 2 + 2
    assert abs(summary["test_acc"] - 0.5) < 0.07  # nothing to generalize
    runs = pd.DataFrame([{"dataset": "mnist5k", "model": "mlp1x512", "regularizer": "none",
                          "variant": "rademacher1", **summary}])  # fmt: skip
    runs.to_csv(tmp_path / "runs.csv", index=False)
    out = {"csv": tmp_path / "rademacher.csv", "md": tmp_path / "rademacher.md"}
    table = write_rademacher_table(str(tmp_path / "runs.csv"), "mnist5k", out)
    assert table.complexity_estimate.tolist() == [1.0]
    assert table.complexity_lower_bound_95.tolist() == [pytest.approx(1 - deviation(1000, 1))]
    assert pd.read_csv(out["csv"]).equals(table)
    assert "complexity_estimate" in out["md"].read_text()
