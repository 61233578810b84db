"""Figures of how the runs memorized (Arpit et al. 2017; Toneva et al. 2019), drawn from one
dataset's tables of rethink.memorization.tables and rethink.results.aggregate.

Each figure is a function from the tables to (matplotlib figure, the tidy data it shows), saved
like the paper's figures (rethink.results.figures.save_figure).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import seaborn as sns

from rethink.data.variants import label_corruption
from rethink.results.aggregate import read_table
from rethink.results.catalog import partially_corrupted, swept_runs
from rethink.results.figures import ordered_models
from rethink.training.regularizers import parse_regularizer

FORGETTING_CAP = 8  # forgetting counts from here on share one bar


@dataclass
class MemorizationTables:
    runs: pd.DataFrame  # results/tables/runs.csv, one row per run
    histories: pd.DataFrame  # results/tables/histories.csv, one row per run and epoch
    epochs: pd.DataFrame  # memorization-epochs.csv of the dataset
    examples: pd.DataFrame  # memorization-examples.csv of the dataset
    critical: pd.DataFrame  # critical-samples.csv of the dataset

    @classmethod
    def read(cls, dataset: str, **paths: str) -> "MemorizationTables":
        tables = {name: read_table(path) for name, path in paths.items()}
        return cls(**{name: t[t.dataset == dataset] for name, t in tables.items()})


def _label_noise(table: pd.DataFrame) -> pd.DataFrame:
    """Runs on partially or fully corrupted labels, without explicit regularization."""
    return table[(table.p > 0) & (table.regularizer == "none")]


def memorization_order(tables: MemorizationTables):
    """Per corrupted variant and model: the fractions of clean and of corrupted examples fitted
    per epoch, with test accuracy (means over seeds); the dotted line marks the epoch of peak
    test accuracy."""
    keys = ["variant", "model", "seed", "epoch"]
    fitted = _label_noise(tables.epochs).melt(
        id_vars=keys, value_vars=["clean_fitted", "corrupted_fitted"], var_name="measure"
    )
    test = _label_noise(tables.histories)[[*keys, "test_acc"]].rename(columns={"test_acc": "value"})
    data = pd.concat([fitted, test.assign(measure="test_accuracy")], ignore_index=True)
    data["measure"] = data.measure.map(MEASURES)
    data = _panels(data)
    grid = sns.relplot(
        data, x="epoch", y="value", hue="measure", col="panel", col_wrap=4, kind="line",
        errorbar=None, col_order=_panel_order(data), height=2.4, facet_kws={"sharex": False},
    )  # fmt: skip
    peaks = _panels(test).groupby(["panel", "epoch"]).value.mean().reset_index()
    for panel, ax in grid.axes_dict.items():
        curve = peaks[peaks.panel == panel]
        ax.axvline(curve.epoch[curve.value.idxmax()], color="grey", linestyle=":")
    grid.set(ylim=(0, 1.02))
    grid.set_titles("{col_name}")
    grid.set_axis_labels("epoch", "fraction")
    data = data.drop(columns="panel")
    return grid.figure, data.sort_values([*keys, "measure"], ignore_index=True)


MEASURES = {
    "clean_fitted": "clean examples fitted",
    "corrupted_fitted": "corrupted examples fitted",
    "test_accuracy": "test accuracy",
}


def _panels(data: pd.DataFrame) -> pd.DataFrame:
    """`data` with a `panel` column naming its (model, variant): one panel per pair present."""
    return data.assign(panel=data.model + ", " + data.variant)


def _panel_order(data: pd.DataFrame) -> list[str]:
    pairs = data[["model", "variant", "panel"]].drop_duplicates()
    models = ordered_models(pairs)
    pairs = pairs.assign(rank=pairs.model.map(models.index)).sort_values(["rank", "variant"])
    return pairs.panel.tolist()


def forgetting(tables: MemorizationTables):
    """The distribution of forgetting events per example on partially corrupted labels, clean
    against corrupted, a panel per run setting (variant, model, regularizer: the runs trained
    until fitted beside Toneva's regime); examples no presentation got right (Toneva: maximally
    forgettable) and examples first learned too late to be forgotten (censored) are bars of
    their own."""
    examples = tables.examples[partially_corrupted(tables.examples)].copy()
    examples["examples"] = np.where(examples.corrupted, "corrupted", "clean")
    capped = examples.forgetting_events.clip(upper=FORGETTING_CAP).astype(str)
    capped[examples.forgetting_events >= FORGETTING_CAP] = f"{FORGETTING_CAP}+"
    capped[examples.censored] = "censored"
    examples["forgetting"] = capped.where(~examples.never_learned_presented, "never learned")
    keys = ["variant", "model", "regularizer", "examples"]
    data = (
        examples.groupby(keys).forgetting.value_counts(normalize=True)
        .rename("fraction").reset_index()
    )  # fmt: skip
    data = _panels(data)
    data["panel"] = data.panel + ", " + data.regularizer
    order = [str(k) for k in range(FORGETTING_CAP)]
    order += [f"{FORGETTING_CAP}+", "censored", "never learned"]
    grid = sns.catplot(
        data, x="forgetting", y="fraction", hue="examples", col="panel", col_wrap=4,
        kind="bar", order=order, col_order=_panel_order(data), height=2.4, aspect=1.2,
    )  # fmt: skip
    grid.set_titles("{col_name}")
    grid.set_axis_labels("forgetting events", "fraction of examples")
    for ax in grid.axes.flat:
        ax.tick_params(axis="x", labelbottom=True, labelrotation=90)
    grid.figure.subplots_adjust(hspace=0.6)  # room for each row's tick labels
    return grid.figure, data.drop(columns="panel")


def critical_samples(tables: MemorizationTables):
    """Critical sample ratio of the fixed test images over epochs, a line per seed and variant
    with the dataset's classes (true, corrupted, random labels, random pixels, Gaussian
    images), a panel per model."""
    critical = tables.critical
    data = critical[(critical.set == "test") & (critical.regularizer == "none")]
    data = data[data.p.notna() | data.variant.isin(["random-pixels", "gaussian"])]
    variants = sorted(data.variant.unique(), key=_csr_order)
    grid = sns.relplot(
        data, x="epoch", y="csr", hue="variant", col="model", kind="line", units="seed",
        estimator=None, hue_order=variants, col_order=ordered_models(data), marker="o",
        height=3.2, aspect=1.4, palette="viridis",
    )  # fmt: skip
    grid.set(xscale="log", xlabel="epoch", ylabel="critical sample ratio (test images)")
    return grid.figure, data[["variant", "model", "seed", "epoch", "examined", "critical", "csr"]]


def _csr_order(variant: str) -> tuple:
    """true, corrupt{p} by p, random, then the pixel corruptions."""
    p = label_corruption(variant)
    return (0, p, variant) if p == p else (1, 0.0, variant)


def regularizers_vs_memorization(tables: MemorizationTables):
    """For each regularizer of a sweep on partially corrupted labels: the fraction of corrupted
    examples already fitted at the epoch of best test accuracy, against that accuracy. (Runs
    here train until they fit every example, so at the end every regularizer has memorized all
    the noise; the question is how much of it by the time generalization peaks.)"""
    keys = ["variant", "model", "regularizer", "seed"]
    runs = swept_runs(tables.runs)[[*keys, "best_test_acc", "epochs"]]
    curves = tables.histories.merge(runs[keys], on=keys)
    best = curves.loc[curves.groupby(keys).test_acc.idxmax(), [*keys, "epoch"]]
    reached = tables.epochs.merge(best, on=[*keys, "epoch"])
    reached = reached[[*keys, "epoch", "corrupted_fitted", "clean_fitted"]]
    data = runs.merge(reached.rename(columns={"epoch": "best_epoch"}), on=keys)
    data = data.sort_values(keys, ignore_index=True)
    order = sorted(data.regularizer.unique(), key=_strength_order)
    grid = sns.relplot(
        data, x="corrupted_fitted", y="best_test_acc", hue="regularizer", hue_order=order,
        style="model", col="variant", height=3.2, s=70, palette="viridis",
    )  # fmt: skip
    grid.set_axis_labels("corrupted examples fitted at the best epoch", "best test accuracy")
    return grid.figure, data


def _strength_order(regularizer: str) -> tuple:
    return tuple(sorted((k, v or 0.0) for k, v in parse_regularizer(regularizer).items()))
