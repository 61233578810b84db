"""The paper's figures, drawn with seaborn from the tidy tables of rethink.results.aggregate.

Every figure is a function from the tables to (matplotlib figure, the tidy data it shows); the
data is saved beside the figure as CSV. With several seeds, lines and bars show the mean, with a
Student-t 95% interval from 3 seeds or more; Fig. 1b and 1c also mark each seed's value.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from rethink.results.aggregate import mean_ci95, read_table
from rethink.results.catalog import FIGURES, fig1a_variants, label_curve_runs
from rethink.files import atomic_path
from rethink.models import models_slowest_first
from rethink.data.variants import label_corruption

matplotlib.use("Agg")  # files only: no display needed, same output everywhere


@dataclass
class Tables:
    runs: pd.DataFrame  # one row per run (results/tables/runs.csv)
    histories: pd.DataFrame  # one row per run and epoch
    steps: pd.DataFrame  # one row per run and block of steps

    @classmethod
    def read(cls, runs: str, histories: str, steps: str) -> "Tables":
        return cls(read_table(runs), read_table(histories), read_table(steps))

    def of_dataset(self, dataset: str) -> "Tables":
        return Tables(*(t[t.dataset == dataset] for t in (self.runs, self.histories, self.steps)))


def ci95(values) -> tuple[float, float]:
    """seaborn errorbar: the Student-t 95% interval of the mean over seeds."""
    return mean_ci95(pd.Series(values))[1:]


def seed_points(runs: pd.DataFrame, y: str, ax) -> None:
    """Each seed's value as a small point under the mean line of its model."""
    sns.scatterplot(
        runs, x="p", y=y, hue="model", hue_order=ordered_models(runs), s=12, alpha=0.5,
        legend=False, ax=ax,
    )  # fmt: skip


def ordered_models(data: pd.DataFrame) -> list[str]:
    present = set(data.model)
    return [m for m in models_slowest_first() if m in present]


def fig1a(tables: Tables):
    """Training loss against thousands of steps, one line per variant, one panel per model."""
    unregularized = tables.steps[tables.steps.regularizer == "none"]
    variants = fig1a_variants(unregularized.variant.unique())
    data = unregularized[unregularized.variant.isin(variants)].copy()
    data["thousand_steps"] = data.step / 1000
    models = ordered_models(data)
    grid = sns.relplot(
        data, x="thousand_steps", y="train_loss", hue="variant", col="model",
        hue_order=variants, col_order=models,
        col_wrap=min(3, len(models)), kind="line", errorbar=ci95, height=3, aspect=1.2,
        facet_kws={"sharex": False},
    )  # fmt: skip
    grid.set_axis_labels("thousands of steps", "average training loss")
    columns = ["model", "variant", "seed", "step", "thousand_steps", "train_loss"]
    return grid.figure, data[columns]


def fig1b(tables: Tables):
    """Time to overfit, relative to true labels, against the label corruption level p."""
    runs = label_curve_runs(tables.runs)
    true_steps = runs[runs.p == 0].groupby("model").steps_to_fit.mean()
    runs["relative_time_to_overfit"] = runs.steps_to_fit / runs.model.map(true_steps)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    sns.lineplot(
        runs, x="p", y="relative_time_to_overfit", hue="model", hue_order=ordered_models(runs),
        marker="o", errorbar=ci95, ax=ax,
    )  # fmt: skip
    seed_points(runs, "relative_time_to_overfit", ax)
    ax.set(xlabel="label corruption p", ylabel="time to overfit / true labels")
    columns = [
        "model",
        "variant",
        "p",
        "seed",
        "fitted",
        "steps_to_fit",
        "relative_time_to_overfit",
    ]
    return fig, runs[columns]


def fig1c(tables: Tables):
    """Test error after convergence against the label corruption level p."""
    runs = label_curve_runs(tables.runs)
    runs["test_error"] = 1 - runs.test_acc
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    sns.lineplot(
        runs, x="p", y="test_error", hue="model", hue_order=ordered_models(runs), marker="o",
        errorbar=ci95, ax=ax,
    )  # fmt: skip
    seed_points(runs, "test_error", ax)
    ax.axhline(0.9, color="grey", linestyle=":", label="chance (10 classes)")
    ax.set(xlabel="label corruption p", ylabel="test error", ylim=(0, 1))
    ax.legend()
    return fig, runs[["model", "variant", "p", "seed", "fitted", "train_acc", "test_error"]]


def fig2b(tables: Tables):
    """Inception with and without batch norm on true labels: accuracy per epoch."""
    h = tables.histories
    plain_true = (h.variant == "true") & (h.regularizer == "none")
    data = h[plain_true & h.model.isin(["inception", "inception-nobn"])]
    data = data.melt(
        id_vars=["model", "seed", "epoch"], value_vars=["train_acc", "test_acc"],
        var_name="split", value_name="accuracy",
    )  # fmt: skip
    data["split"] = data.split.str.removesuffix("_acc")
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    sns.lineplot(
        data, x="epoch", y="accuracy", hue="model", style="split", marker="o", errorbar=ci95, ax=ax
    )
    ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    return fig, data


def fig2a(tables: Tables):
    """True labels: training and test accuracy against steps, one panel per model and
    regularizer; shaded, the gain early stopping could bring (cumulative best test accuracy
    above the current one). Means over seeds."""
    h = tables.histories[tables.histories.variant == "true"].sort_values("epoch")
    h = h.assign(
        best_test_acc=h.groupby(["model", "regularizer", "seed"]).test_acc.cummax(),
        thousand_steps=h.step / 1000,
    )
    keys = ["model", "regularizer", "thousand_steps"]
    data = h.groupby(keys, as_index=False)[["train_acc", "test_acc", "best_test_acc"]].mean()
    data["setting"] = data.model + ", " + data.regularizer
    settings = [
        f"{m}, {r}"
        for m in ordered_models(data)
        for r in sorted(data[data.model == m].regularizer.unique())
    ]
    grid = sns.FacetGrid(data, col="setting", col_order=settings, col_wrap=min(4, len(settings)),
                         height=2.6, sharex=False, ylim=(0, 1.02))  # fmt: skip
    for ax, setting in zip(grid.axes.flat, settings, strict=False):
        curve = data[data.setting == setting]
        ax.plot(curve.thousand_steps, curve.train_acc, label="train")
        ax.plot(curve.thousand_steps, curve.test_acc, label="test")
        ax.fill_between(curve.thousand_steps, curve.test_acc, curve.best_test_acc, alpha=0.3,
                        color="C1", label="best test so far")  # fmt: skip
    grid.set_titles("{col_name}")
    grid.set_axis_labels("thousands of steps", "accuracy")
    grid.figure.legend(
        *grid.axes.flat[0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1, 0.5)
    )
    return grid.figure, data.drop(columns="setting")


def random_labels_regularizers(tables: Tables):
    """Training accuracy reached on random labels under each regularizer."""
    runs = tables.runs[tables.runs.variant == "random"]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    sns.barplot(
        runs, x="model", y="train_acc", hue="regularizer", order=ordered_models(runs),
        errorbar=ci95, ax=ax,
    )  # fmt: skip
    ax.set(xlabel="", ylabel="training accuracy on random labels", ylim=(0, 1.05))
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1))
    return fig, runs[["model", "regularizer", "seed", "fitted", "epochs", "train_acc", "test_acc"]]


def write_figure(name: str, tables: Tables, dataset: str, out: dict, dpi: int = 150) -> None:
    """Draw runs figure `name` for `dataset`; save PDF, PNG (at `dpi`) and the tidy CSV to the
    paths in `out`."""
    write_catalog_figure(name, tables.of_dataset(dataset), dataset, out, dpi)


def write_catalog_figure(name: str, tables, dataset: str, out: dict, dpi: int = 150) -> None:
    """Draw figure `name` of the catalog from `tables`, those of `dataset`; save it as
    write_figure does."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, data = FIGURES[name].draw_function()(tables)
    save_figure(fig, data, f"{name} ({dataset})", out, dpi)


def save_figure(fig, data: pd.DataFrame, title: str, out: dict, dpi: int = 150) -> None:
    """Save `fig` as PDF and PNG (at `dpi`) and the tidy `data` it shows as CSV, to the paths in
    `out`, each written whole or not at all."""
    fig.suptitle(title, y=1.02)
    with atomic_path(out["csv"]) as tmp:
        data.to_csv(tmp, index=False)
    for kind in ("pdf", "png"):
        with atomic_path(out[kind]) as tmp:
            # no creation date: the same data give the same PDF bytes
            metadata = {"CreationDate": None} if kind == "pdf" else None
            fig.savefig(tmp, format=kind, dpi=dpi, bbox_inches="tight", metadata=metadata)
    plt.close(fig)


def figure_paths(root: str | Path, dataset: str, name: str) -> dict:
    return {kind: Path(root) / dataset / f"{name}.{kind}" for kind in ("pdf", "png", "csv")}
