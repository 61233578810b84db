"""The measures' figures (rule plot_measure_figure): each measure against the generalization gap,
and the normalized margin distributions across label-corruption levels (Bartlett et al. 2017,
Fig. 1-2)."""

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rethink.data.variants import label_corruption
from rethink.measures import MEASURES
from rethink.results.aggregate import read_table
from rethink.results.catalog import margin_figure_runs
from rethink.runs import RUN_FIELDS


@dataclass
class MeasureTables:
    measures: pd.DataFrame  # measures.csv of the dataset: one row per run and measure
    margins: pd.DataFrame  # every training example's margin, of the margin figure's variants

    @classmethod
    def read(cls, measures: str, margins: list[str]) -> "MeasureTables":
        parts = [read_table(path) for path in margins]
        table = pd.concat(parts) if parts else pd.DataFrame(columns=RUN_FIELDS)
        return cls(read_table(measures), table)


def _variant_order(variants) -> list[str]:
    """Label variants by corruption level, then the others by name."""
    present = sorted(set(variants))
    return sorted(present, key=lambda v: (np.nan_to_num(label_corruption(v), nan=2.0), v))


def measures_vs_gap(tables: MeasureTables):
    """Each measure (a panel) against the generalization gap of every fitted run, one colour per
    variant; log scale for a measure whose positive values span more than 100x. Infinite values
    (a search without a limit: docs/measures.md) are left out."""
    measures = tables.measures
    data = measures[measures.fitted.astype(bool) & np.isfinite(measures.value)]
    if data.empty:
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.text(0.5, 0.5, "no run fitted its training set", ha="center", va="center")
        ax.set_axis_off()
        return fig, data
    order = [m for m in MEASURES if m in set(data.measure)]
    grid = sns.relplot(
        data, x="value", y="gap", hue="variant", hue_order=_variant_order(data.variant),
        palette="tab20", style="model", col="measure", col_order=order, col_wrap=5, height=2.0,
        facet_kws={"sharex": False}, s=25,
    )  # fmt: skip
    for measure, ax in grid.axes_dict.items():
        values = data.value[data.measure == measure]
        if (values > 0).all() and values.max() > 100 * values.min():
            ax.set_xscale("log")
        ax.set_title(measure, fontsize=8)
        ax.set_xlabel("")
    grid.set_ylabels("train - test accuracy")
    return grid.figure, data


def margin_distributions(tables: MeasureTables):
    """Density of the normalized margins (margin / (R ||X||_F / m)) of every training example,
    one line per label-corruption level, one model (rethink.results.catalog.margin_figure_runs)."""
    runs = margin_figure_runs(tables.margins[RUN_FIELDS].drop_duplicates())
    data = tables.margins.merge(runs[RUN_FIELDS], on=RUN_FIELDS)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    sns.kdeplot(
        data, x="normalized_margin", hue="variant", hue_order=_variant_order(data.variant),
        common_norm=False, palette="viridis", ax=ax,
    )  # fmt: skip
    models = ", ".join(sorted(set(data.model)))
    ax.set_xlabel(f"normalized margin ({models})")
    return fig, data
