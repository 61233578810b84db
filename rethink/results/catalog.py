"""Every figure the pipeline draws, in one catalog: the function that draws it, which tables it
reads, its caption, and whether a study's planned runs can fill it. Imports neither seaborn
nor torch: planning reads the catalog, and a plotting job imports the one function it draws.

Runs figures (rule plot_figure) read the aggregated run tables (rethink.results.figures.Tables);
memorization figures (rule plot_memorization_figure) the per-example tables
(rethink.memorization.figures.MemorizationTables); measure figures (rule plot_measure_figure)
the measures and margins (rethink.results.measure_figures.MeasureTables).
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from rethink.data.variants import PIXEL_CORRUPTIONS, label_corruption

KERNEL_FIGURE = "kernel-norm-vs-error"  # rule kernel_report, per dataset (rethink.theory)


@dataclass(frozen=True)
class Plan:
    """What decides which figures a study draws: its planned runs (dataset, variant, model,
    regularizer, seed; keys only) and whether they measure critical samples."""

    runs: pd.DataFrame
    critical_measured: bool = False


@dataclass(frozen=True)
class Figure:
    draw: str  # "module:function": (its tables) -> (matplotlib figure, the tidy data it shows)
    reads: str  # "runs", "memorization" or "measures": the tables it is drawn from
    caption: str
    drawable: Callable[[Plan], bool]

    def draw_function(self) -> Callable:
        module, _, name = self.draw.partition(":")
        return getattr(importlib.import_module(module), name)


def fig1a_variants(variants) -> list[str]:
    """Fig. 1a's lines among `variants`: true labels, random labels and every pixel corruption
    (the paper's three and any registered since), in that order. Partial corruptions are
    Fig. 1b/c's business."""
    present = set(variants)
    return [v for v in ["true", "random", *PIXEL_CORRUPTIONS] if v in present]


def label_curve_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Unregularized runs on label variants, of the models with a curve: true labels and at
    least two other corruption levels (two points alone would draw a misleading line)."""
    runs = runs.assign(p=runs.variant.map(label_corruption))
    runs = runs[(runs.regularizer == "none") & runs.p.notna()]
    levels = runs.groupby("model").p.agg(lambda p: p.nunique() >= 3 and (p == 0).any())
    return runs[runs.model.map(levels).astype(bool)].copy()


def swept_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs on partially corrupted labels of the (variant, model) pairs trained under two or
    more regularizers."""
    p = runs.variant.map(label_corruption)
    noisy = runs[(p > 0) & (p < 1)]
    counts = noisy.groupby(["variant", "model"]).regularizer.transform("nunique")
    return noisy[counts >= 2]


def unregularized_true_models(runs: pd.DataFrame) -> set[str]:
    return set(runs[(runs.variant == "true") & (runs.regularizer == "none")].model)


def partially_corrupted(table: pd.DataFrame) -> pd.Series:
    """Which rows are of label variants with 0 < p < 1: clean and corrupted examples side by
    side."""
    p = table.variant.map(label_corruption)
    return (p > 0) & (p < 1)


def partial_label_noise_planned(runs: pd.DataFrame) -> bool:
    return bool(partially_corrupted(runs).any())


def margin_figure_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose normalized margins the margin figure compares: one model's unregularized
    runs of its first seed on every label variant, of the model with the most corruption levels
    (two at least)."""
    runs = runs.assign(p=runs.variant.map(label_corruption))
    runs = runs[(runs.regularizer == "none") & runs.p.notna()]
    runs = runs[runs.seed == runs.groupby("model").seed.transform("min")]
    levels = runs.groupby("model", sort=False).p.nunique()
    if levels.empty or levels.max() < 2:
        return runs.iloc[:0]
    return runs[runs.model == levels.idxmax()].sort_values("p")


def label_noise_planned(runs: pd.DataFrame) -> bool:
    return bool(((runs.variant.map(label_corruption) > 0) & (runs.regularizer == "none")).any())


FIGURES: dict[str, Figure] = {
    "fig1a": Figure(
        "rethink.results.figures:fig1a",
        "runs",
        "Training loss against thousands of SGD steps for true labels, random labels, shuffled "
        "pixels, random pixels and Gaussian images (and any other pixel corruption of the "
        "study), one panel per model, no explicit "
        "regularization. Matches Fig. 1a of Zhang et al. (2017), which shows Inception on "
        "CIFAR-10: every variant reaches zero loss, random labels last.",
        lambda plan: bool(fig1a_variants(plan.runs[plan.runs.regularizer == "none"].variant)),
    ),
    "fig1b": Figure(
        "rethink.results.figures:fig1b",
        "runs",
        "Steps until 100% training accuracy, relative to the same model on true labels, against "
        "the label corruption level p. Matches Fig. 1b of Zhang et al. (2017): the time to "
        "overfit grows by a small constant factor. Runs that did not fit are left out (see the "
        "CSV's fitted column).",
        lambda plan: not label_curve_runs(plan.runs).empty,
    ),
    "fig1c": Figure(
        "rethink.results.figures:fig1c",
        "runs",
        "Test error after convergence against the label corruption level p; the dotted line is "
        "chance. Training error is 0, so this is the generalization error. Matches Fig. 1c of "
        "Zhang et al. (2017): it rises steadily to chance at p = 1.",
        lambda plan: not label_curve_runs(plan.runs).empty,
    ),
    "fig2b": Figure(
        "rethink.results.figures:fig2b",
        "runs",
        "Training and test accuracy per epoch of Inception with and without batch norm on true "
        "labels, no explicit regularization. Matches Fig. 2b of Zhang et al. (2017): batch norm "
        "changes test accuracy by only a few points.",
        lambda plan: {"inception", "inception-nobn"} <= unregularized_true_models(plan.runs),
    ),
    "fig2a": Figure(
        "rethink.results.figures:fig2a",
        "runs",
        "Training and test accuracy against thousands of steps on true labels, one panel per "
        "model and regularizer; shaded: the cumulative best test accuracy above the current one, "
        "what early stopping could gain. Matches Fig. 2a of Zhang et al. (2017), Inception V3 "
        "on ImageNet, where the gain is large without other regularizers.",
        lambda plan: bool((plan.runs.variant == "true").any()),
    ),
    "random-labels-regularizers": Figure(
        "rethink.results.figures:random_labels_regularizers",
        "runs",
        "Training accuracy reached on random labels under each explicit regularizer. The setting "
        "of the regularizer experiments of Zhang et al. (2017): with weight decay, Inception and "
        "the MLPs still fit random labels, AlexNet fails to converge.",
        lambda plan: bool((plan.runs.variant == "random").any()),
    ),
    "memorization-order": Figure(
        "rethink.memorization.figures:memorization_order",
        "memorization",
        "Fraction of clean and of corrupted training examples fitted to their assigned labels "
        "at each epoch, with test accuracy (means over seeds); the dotted line marks the epoch "
        "of peak test accuracy. After Arpit et al. (2017), Fig. 2 and Section 4: real patterns "
        "are learned first, noise later, and test accuracy peaks before the noise is fitted.",
        lambda plan: label_noise_planned(plan.runs),
    ),
    "forgetting": Figure(
        "rethink.memorization.figures:forgetting",
        "memorization",
        "Distribution of forgetting events (correct at one presentation in its minibatch, wrong "
        "at the next) of clean and of corrupted training examples, one panel per run setting; "
        "examples no presentation got right (never learned) and examples first learned in the "
        "last tenth of the presentations (censored: too late to be forgotten) have bars of "
        "their own. After Toneva et al. (2019), Fig. 1 and Section 5, who found no unforgettable "
        "noisy example in their regime (random crops, weight decay, a fixed epoch budget: here "
        "the crop+wd panels); runs trained until they fit every label (none) memorize the noise "
        "and can keep some of it unforgotten.",
        lambda plan: partial_label_noise_planned(plan.runs),
    ),
    "critical-samples": Figure(
        "rethink.memorization.figures:critical_samples",
        "memorization",
        "Critical sample ratio of fixed test images (LASS: a prediction changes within an "
        "L-inf ball of radius 0.3 on the 0-255 scale) over epochs, a line per variant and seed, "
        "a panel per model. After Arpit et al. (2017), Fig. 8-9: networks trained on noise "
        "have more critical samples.",
        lambda plan: plan.critical_measured,
    ),
    "regularizers-vs-memorization": Figure(
        "rethink.memorization.figures:regularizers_vs_memorization",
        "memorization",
        "For each regularizer of a sweep on partially corrupted labels: the fraction of "
        "corrupted examples already fitted at the epoch of best test accuracy, against that "
        "accuracy (runs train until they fit every example, so all end at 1). After Arpit et "
        "al. (2017), Section 5 and Fig. 10: dropout limits memorization of noise with the least "
        "harm to generalization.",
        lambda plan: not swept_runs(plan.runs).empty,
    ),
    "measures-vs-gap": Figure(
        "rethink.results.measure_figures:measures_vs_gap",
        "measures",
        "Each generalization measure (a panel; docs/measures.md) against the generalization gap "
        "of every fitted run, one colour per variant, one marker per model. After Jiang et al. "
        "(2020), who rank over 40 such measures by Kendall's tau with the gap over 10,000 "
        "networks (measure-ranking.md): a measure that explains the randomization tests rises "
        "with the gap, from true to random labels.",
        lambda plan: not plan.runs.empty,
    ),
    "margin-distributions": Figure(
        "rethink.results.measure_figures:margin_distributions",
        "measures",
        "Density of the normalized margins of every training example (margin divided by the "
        "spectral complexity R times ||X||_F / m), one line per label-corruption level, one "
        "model. After Bartlett, Foster and Telgarsky (2017), Fig. 1-2: the normalized margins "
        "of networks fitted to random labels lie far below those fitted to true labels, as "
        "their generalization does.",
        lambda plan: not margin_figure_runs(plan.runs).empty,
    ),
}


def drawable_figures(plan: Plan, reads: str) -> list[str]:
    """The figures drawn from tables `reads` that the planned runs can fill."""
    return [n for n, f in FIGURES.items() if f.reads == reads and f.drawable(plan)]


def figures_reading(reads: str) -> list[str]:
    return [n for n, f in FIGURES.items() if f.reads == reads]
