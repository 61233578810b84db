"""Random signs (`rademacher{k}` variants) and the Rademacher complexity lower bound 2 acc - 1."""

import numpy as np
import pandas as pd
import pytest

from rethink.data.h5io import write_dataset
from rethink.results.rademacher import rademacher_table, write_rademacher_table
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


def test_the_bound_is_twice_the_training_accuracy_minus_one():
    runs = pd.DataFrame(
        {
            "model": ["mlp1x512"] * 3 + ["alexnet"],
            "regularizer": "none",
            "variant": ["rademacher1", "rademacher2", "true", "rademacher1"],
            "train_acc": [1.0, 0.9, 1.0, 0.75],
            "test_acc": [0.5, 0.48, 0.95, 0.51],
        }
    )
    table = rademacher_table(runs).set_index("model")
    assert table.loc["mlp1x512", "draws"] == 2  # the true-label run is not a draw
    assert table.loc["mlp1x512", "complexity_lower_bound"] == pytest.approx(0.9)
    assert table.loc["mlp1x512", "smallest_bound"] == pytest.approx(0.8)
    assert table.loc["alexnet", "complexity_lower_bound"] == pytest.approx(0.5)


@pytest.mark.slow
def test_an_mlp_fits_random_signs_so_the_bound_is_one(mnist5k, tmp_path):
    variant = tmp_path / "rademacher1.h5"
    write_dataset(variant, make_variant(mnist5k, "rademacher1", seed=0))
    config = RunConfig("mlp1x512", train_subset=1000, lr_decay=0.9958, max_epochs=300, device="cpu")
    summary = train_run(variant, tmp_path / "run", config)
    assert summary["fitted"] and summary["params"] == 784 * 512 + 512 + 512 * 2 + 2
    assert abs(summary["test_acc"] - 0.5) < 0.07  # nothing to generalize
    runs = pd.DataFrame([{"dataset": "mnist5k", "model": "mlp1x512", "regularizer": "none",
                          "variant": "rademacher1", **summary}])  # fmt: skip
    runs.to_csv(tmp_path / "runs.csv", index=False)
    out = {"csv": tmp_path / "rademacher.csv", "md": tmp_path / "rademacher.md"}
    table = write_rademacher_table(str(tmp_path / "runs.csv"), "mnist5k", out)
    assert table.complexity_lower_bound.tolist() == [1.0]
    assert pd.read_csv(out["csv"]).equals(table)
    assert "complexity_lower_bound" in out["md"].read_text()
