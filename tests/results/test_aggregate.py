import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rethink.results.aggregate import (
    collect_curves,
    collect_runs,
    mean_ci95,
    run_keys,
    write_tables,
)
from rethink.results.catalog import Plan, drawable_figures, figures_reading
from rethink.results.figures import Tables, figure_paths, write_figure
from rethink.results.table1 import formatted, paper_table1, table1, write_table1

MODELS = ["inception", "inception-nobn", "mlp1x512"]
VARIANTS = {"true": 0.0, "corrupt0.5": 0.5, "random": 1.0, "gaussian": math.nan}


def fake_run(root, dataset, variant, model, regularizer, seed):
    """A finished run's three files, with numbers that follow the paper's pattern."""
    run_dir = root / "runs" / dataset / variant / model / regularizer / f"seed{seed}"
    run_dir.mkdir(parents=True)
    p = VARIANTS[variant]
    steps_to_fit = int(1000 * (1 + (0 if math.isnan(p) else p)) + 10 * seed)
    test_acc = 0.9 - 0.8 * (1 if math.isnan(p) else p) + 0.01 * seed
    epochs = np.arange(1, 6)
    pd.DataFrame(
        {"epoch": epochs, "step": epochs * 200, "lr": 0.1 * 0.95 ** (epochs - 1),
         "train_loss": 2.3 / epochs, "train_acc": epochs / 5, "test_loss": 2.0,
         "test_acc": test_acc * epochs / 5, "seconds": epochs * 1.5}
    ).to_csv(run_dir / "history.csv", index=False)  # fmt: skip
    pd.DataFrame(
        {"step": np.arange(10, 1001, 10), "train_loss": np.linspace(2.3, 0.01, 100)}
    ).to_csv(run_dir / "steps.csv", index=False)
    summary = {
        "train_acc": 1.0, "test_acc": test_acc, "best_test_acc": test_acc, "fitted": True,
        "steps_to_fit": steps_to_fit, "epochs": 5, "steps": steps_to_fit, "seconds": 7.5,
        "params": 1000, "train_images": 4000, "test_images": 1000, "device": "cpu", "torch": "2",
        "config_hash": "x", "config": {"lr": 0.1},
    }  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


@pytest.fixture
def study(tmp_path):
    """Three seeds of a small grid, aggregated into the three tables."""
    dirs = [
        fake_run(tmp_path, "mnist5k", variant, model, "none", seed)
        for variant in VARIANTS
        for model in MODELS
        for seed in range(3)
    ]
    dirs += [fake_run(tmp_path, "mnist5k", "true", "mlp1x512", "wd", s) for s in range(3)]
    out = {name: tmp_path / "tables" / f"{name}.csv" for name in ("runs", "histories", "steps")}
    write_tables(
        [str(d / "summary.json") for d in dirs],
        [str(d / "history.csv") for d in dirs],
        [str(d / "steps.csv") for d in dirs],
        out,
    )
    return out


def test_run_keys_come_from_the_directory():
    keys = run_keys("results/runs/cifar10/corrupt0.4/alexnet/crop+wd/seed3")
    assert keys == dict(dataset="cifar10", variant="corrupt0.4", p=0.4, model="alexnet",
                        regularizer="crop+wd", seed=3)  # fmt: skip
    assert math.isnan(run_keys("r/runs/mnist5k/gaussian/mlp1x512/none/seed0")["p"])


def test_runs_table_has_keys_and_every_summary_field(study):
    runs = pd.read_csv(study["runs"])
    assert len(runs) == len(VARIANTS) * len(MODELS) * 3 + 3
    assert list(runs.columns[:6]) == ["dataset", "variant", "p", "model", "regularizer", "seed"]
    assert {"train_acc", "test_acc", "best_test_acc", "fitted", "steps_to_fit", "params"} <= set(
        runs
    )
    assert "config" not in runs
    histories = pd.read_csv(study["histories"])
    assert len(histories) == len(runs) * 5 and histories.columns[0] == "dataset"


def test_mean_ci95_is_the_student_t_interval():
    values = pd.Series([0.90, 0.92, 0.97])
    mean, low, high = mean_ci95(values)
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((0.93, 0.93 - half, 0.93 + half))
    for few in ([0.5], [0.5, 0.6]):  # no interval from fewer than 3 seeds
        mean, low, high = mean_ci95(pd.Series(few))
        assert mean == pytest.approx(np.mean(few)) and math.isnan(low) and math.isnan(high)


def test_every_figure_renders_with_its_tidy_csv(study, tmp_path):
    tables = Tables.read(**{k: str(v) for k, v in study.items()})
    keys = tables.runs[["dataset", "variant", "model", "regularizer", "seed"]]
    names = drawable_figures(Plan(keys), "runs")
    assert names == figures_reading("runs")
    for name in names:
        out = figure_paths(tmp_path / "figures", "mnist5k", name)
        write_figure(name, tables, "mnist5k", out)
        assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert out["pdf"].read_bytes()[:5] == b"%PDF-"
        assert len(pd.read_csv(out["csv"])) > 0


def test_fig1b_is_relative_to_the_models_true_labels(study, tmp_path):
    tables = Tables.read(**{k: str(v) for k, v in study.items()})
    out = figure_paths(tmp_path, "mnist5k", "fig1b")
    write_figure("fig1b", tables, "mnist5k", out)
    data = pd.read_csv(out["csv"])
    assert set(data.p) == {0.0, 0.5, 1.0}  # pixel variants have no p
    mean = data.groupby("p").relative_time_to_overfit.mean()
    assert mean[0.0] == pytest.approx(1.0) and mean[1.0] == pytest.approx(2010 / 1010)


def test_figures_are_byte_identical_for_the_same_data(study, tmp_path):
    tables = Tables.read(**{k: str(v) for k, v in study.items()})
    a, b = (figure_paths(tmp_path / run, "mnist5k", "fig1c") for run in "ab")
    write_figure("fig1c", tables, "mnist5k", a)
    write_figure("fig1c", tables, "mnist5k", b)
    for kind in ("pdf", "png", "csv"):
        assert a[kind].read_bytes() == b[kind].read_bytes()


def test_table1_sets_ours_beside_the_papers_claims(study, tmp_path):
    out = {ext: tmp_path / f"table1.{ext}" for ext in ("csv", "md", "tex")}
    write_table1(str(study["runs"]), "mnist5k", out)
    table = pd.read_csv(out["csv"])
    cell = table.set_index(["model", "labels", "crop", "wd"])
    row = cell.loc["mlp1x512", "true", "no", "no"]
    assert row.seeds == 3 and row.fitted == 3 and row.test_acc == pytest.approx(91.0)  # 90-92 %
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # the seeds' standard deviation is 1 point
    assert (row.test_ci95_low, row.test_ci95_high) == pytest.approx((91 - half, 91 + half))
    assert row.test_binomial_se == pytest.approx(100 * math.sqrt(0.91 * 0.09 / 1000))
    # True against random labels (10-12 %): Welch's interval, 3 + 3 seeds of equal spread (df 4)
    assert row.compared_with == "random/no/no" and row.test_change == pytest.approx(80.0)
    welch = stats.t.ppf(0.975, 4) * math.sqrt(1 / 3 + 1 / 3)
    assert (row.test_change_ci95_low, row.test_change_ci95_high) == pytest.approx(
        (80 - welch, 80 + welch)
    )
    # The paper's claim for the same cell, in its own columns: 50.51 true, 10.61 random labels
    assert row.paper_test_acc == 50.51 and row.paper_test_change == pytest.approx(39.90)
    wd = cell.loc["mlp1x512", "true", "no", "yes"]
    assert wd.compared_with == "true/no/no" and wd.test_change == pytest.approx(0.0)
    assert wd.paper_test_acc == 50.39 and wd.paper_test_change == pytest.approx(-0.12)
    random = cell.loc["mlp1x512", "random", "no", "no"]
    assert np.isnan(random.test_change)  # nothing to compare
    # steps to fit: 1000 + 10 seed on true labels, 2000 + 10 seed on random ones (Fig. 1b)
    assert row.steps_to_fit == 1010 and random.steps_to_fit == 2010
    assert random.steps_vs_true == pytest.approx(2010 / 1010) and np.isnan(row.steps_vs_true)
    # rows follow the paper's order: inception before inception-nobn before mlp1x512
    assert table.model.tolist().index("inception") < table.model.tolist().index("mlp1x512")
    markdown = out["md"].read_text()
    assert "91.00 [" in markdown and "+80.0 [" in markdown and "paper, CIFAR-10: test %" in markdown
    assert "2010 (1.99x true)" in markdown
    assert "\\begin{tabular}" in out["tex"].read_text()


def test_table1_shows_the_seeds_of_a_cell_with_fewer_than_three_and_what_a_model_stands_for():
    runs = pd.DataFrame(
        {
            "variant": ["true", "true", "random"], "model": "alexnet-quarter",
            "regularizer": "none", "seed": [0, 1, 0], "fitted": True,
            "train_acc": 1.0, "test_acc": [0.97, 0.98, 0.11], "test_images": 1000,
            "steps_to_fit": [700, 740, 2300],
        }
    )  # fmt: skip
    table = table1(runs)
    shown = formatted(table, "mnist5k").set_index("labels")
    assert shown.loc["true", "mnist5k: test %"] == "seeds: 97.00, 98.00"
    assert shown.loc["random", "mnist5k: test %"] == "11.00"
    assert shown.loc["true", "mnist5k: test change"] == "+86.5 vs random labels"  # no interval
    # the narrowed AlexNet is compared with the paper's AlexNet: 76.07 true, 9.86 random
    assert set(table.paper_model) == {"alexnet"}
    assert table.set_index("labels").paper_test_change["true"] == pytest.approx(66.21)


def test_the_papers_table1_has_its_19_rows():
    paper = paper_table1()
    assert len(paper) == 19 and set(paper.model) == {
        "inception", "inception-nobn", "alexnet", "mlp3x512", "mlp1x512",
    }  # fmt: skip
    assert (
        paper.set_index(["model", "labels", "crop", "wd"]).loc[
            ("inception", "true", "yes", "yes"), "test_acc"
        ]
        == 89.05
    )


def test_curves_stack_with_keys(tmp_path):
    run = fake_run(tmp_path, "mnist5k", "random", "mlp1x512", "none", 0)
    curves = collect_curves([str(run / "steps.csv")])
    assert list(curves.columns) == [
        "dataset", "variant", "p", "model", "regularizer", "seed", "step", "train_loss",
    ]  # fmt: skip
    assert (curves.p == 1.0).all()
    runs = collect_runs([str(run / "summary.json")])
    assert runs.loc[0, "steps_to_fit"] == 2000
