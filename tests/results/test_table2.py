"""Table 2 beside the paper's numbers, Fig. 2a's early-stopping shading, and the whole
workflow on a tiny ImageNet: conversion, label variants, streamed runs, tables, figures."""

import numpy as np
import pandas as pd
import pytest

from rethink.results.catalog import FIGURES, Plan
from rethink.results.figures import Tables, fig2a
from rethink.results.table2 import cell, formatted, paper_table2, table2
from tests.conftest import copy_workflow, run_snakemake
from tests.fake_imagenet import write_folders


def runs_table() -> pd.DataFrame:
    rows = [
        ("true", "augment+dropout+wd", 0, 0.9, 0.7, 0.75, 0.9),
        ("true", "augment+dropout+wd", 1, 0.8, 0.6, 0.65, 0.8),
        ("true", "augment+dropout+wd", 2, 0.85, 0.65, 0.7, 0.85),  # 3 seeds: an interval
        ("true", "none", 0, 1.0, 0.5, 0.6, 0.8),
        ("random", "dropout0.2+wd", 0, 0.9, 0.001, 0.002, 0.005),
        ("random", "crop", 0, 0.9, 0.1, 0.1, 0.5),  # not a Table 2 column: left out
        ("corrupt0.2", "none", 0, 0.9, 0.1, 0.1, 0.5),  # not Table 2's labels: left out
    ]
    columns = ["variant", "regularizer", "seed", "train_acc", "test_acc", "best_test_acc",
               "test_top5"]  # fmt: skip
    runs = pd.DataFrame(rows, columns=columns)
    return runs.assign(dataset="imagenet", model="inception-v3")


def test_regularizers_map_to_the_columns_of_table2():
    assert cell("augment+dropout+wd") == ("yes", "yes", "yes")
    assert cell("wd1e-4") == ("no", "no", "yes") and cell("none") == ("no", "no", "no")
    assert cell("crop+wd") is None and cell("not-a-regularizer") is None


def test_table2_averages_seeds_and_sits_beside_the_papers_rows():
    table = table2(runs_table())
    assert table[["labels", "augment", "dropout", "wd"]].values.tolist() == [
        ["true", "yes", "yes", "yes"], ["true", "no", "no", "no"], ["random", "no", "yes", "yes"],
    ]  # fmt: skip
    first = table.iloc[0]
    assert first.seeds == 3 and first.test_acc == pytest.approx(65.0)
    assert first.test_acc_ci95_low < 65 < first.test_acc_ci95_high
    assert first.paper_test_top1 == 77.84 and first.paper_test_top5 == 93.92
    assert table.iloc[1].paper_best_test_top1 == 63.16  # the paper's early-stopping value
    pretty = formatted(table, "imagenet")
    assert pretty["top-1 test (imagenet)"].tolist()[1] == "50.00 (60.00)"
    assert pretty["top-1 test (paper)"].tolist()[1] == "59.80 (63.16)"


def test_runs_with_averaged_weights_enter_table2_with_the_average():
    """As TF's evaluation: the moving average's accuracies where a run kept one."""
    runs = runs_table()
    runs["averaged_test_acc"] = np.where(runs.regularizer == "none", 0.55, np.nan)
    runs["best_averaged_test_acc"] = np.where(runs.regularizer == "none", 0.62, np.nan)
    runs["averaged_train_acc"] = runs["averaged_test_top5"] = np.nan
    table = table2(runs).set_index("labels")
    none = table[table.augment == "no"].loc["true"]
    assert none.weights == "averaged" and none.test_acc == pytest.approx(55.0)
    assert none.best_test_acc == pytest.approx(62.0)
    assert np.isnan(none.train_acc)  # not measured with the average: not the raw one either
    assert table[table.augment == "yes"].loc["true"].weights == "raw"
    assert table[table.augment == "yes"].loc["true"].test_acc == pytest.approx(65.0)
    assert "weights" in formatted(table.reset_index(), "imagenet")


def test_the_papers_table2_holds_its_seven_rows_with_the_text_confirmed_numbers():
    paper = paper_table2().set_index(["labels", "augment", "dropout", "wd"])
    assert len(paper) == 7
    assert paper.loc[("true", "no", "no", "no"), ["test_top1", "test_top5"]].tolist() == [
        59.80, 80.38,
    ]  # fmt: skip
    assert paper.loc[("true", "yes", "no", "no"), "test_top1"] == 72.95
    assert paper.loc[("random", "no", "no", "no"), "train_top1"] == 95.20


def test_fig2a_shades_the_cumulative_best_test_accuracy():
    history = pd.DataFrame({
        "epoch": [1, 2, 3, 4], "step": [10, 20, 30, 40], "test_acc": [0.3, 0.5, 0.4, 0.45],
        "train_acc": [0.4, 0.6, 0.8, 1.0],
    })  # fmt: skip
    history = history.assign(
        dataset="d", variant="true", model="mlp1x512", regularizer="none", seed=0
    )
    figure, data = fig2a(Tables(pd.DataFrame(), history, pd.DataFrame()))
    np.testing.assert_allclose(data.best_test_acc, [0.3, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(data.thousand_steps, [0.01, 0.02, 0.03, 0.04])
    drawable = FIGURES["fig2a"].drawable
    assert drawable(Plan(history)) and not drawable(Plan(history.assign(variant="random")))


@pytest.mark.slow
def test_the_workflow_runs_a_tiny_imagenet_end_to_end(tmp_path):
    write_folders(tmp_path / "ilsvrc", train_per_class=12, val_per_class=4)
    study = {
        "datasets": ["imagenet"],
        "data": {"imagenet_path": str(tmp_path / "ilsvrc")},
        "variants": {"names": ["true", "random"]},
        "runs": [{"models": ["mlp1x512"], "regularizers": ["none", "augment+wd"]}],
        "training": {
            "crop_size": 32, "batch_size": 12, "max_epochs": 4, "lr": 0.05, "device": "cpu",
            "record_examples": False, "eval_batch_size": 12, "train_eval_images": 24,
            "gpus_per_node": 2, "loader_workers": 1,
        },
    }  # fmt: skip
    copy_workflow(tmp_path / "study", study)
    result = run_snakemake(tmp_path / "study", "--cores", "4", repo=tmp_path / "study")
    assert result.returncode == 0, result.stderr[-5000:]
    root = tmp_path / "study" / "results"
    runs = pd.read_csv(root / "tables/runs.csv")
    assert len(runs) == 4 and (runs.processes == 2).all()
    assert runs.test_top5.isna().all()  # 3 classes: top-5 is measured above 5 classes only
    table = pd.read_csv(root / "tables/imagenet/table2.csv")
    assert sorted(zip(table.labels, table.augment, table.wd, strict=True)) == [
        ("random", "no", "no"), ("random", "yes", "yes"), ("true", "no", "no"),
        ("true", "yes", "yes"),
    ]  # fmt: skip
    assert (root / "figures/imagenet/fig2a.png").exists()
    histories = pd.read_csv(root / "tables/histories.csv")
    assert {"train_top5", "test_top5"} <= set(histories.columns)
    # the random-label variant stores labels only
    assert (root / "variants/imagenet/random.h5").stat().st_size < 20_000
