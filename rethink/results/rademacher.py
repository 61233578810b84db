"""The empirical Rademacher complexity of Section 5 of the paper, estimated from fitted signs.

For random signs sigma on the n training points, a classifier h trained to fit them reaches
(1/n) sum_i sigma_i h(x_i) = 2 acc - 1, where acc is its training accuracy. Its class's empirical
Rademacher complexity R = E_sigma sup_h (1/n) sum_i sigma_i h(x_i) is at least E_sigma of that
correlation, which the mean of 2 acc - 1 over K independent draws (the `rademacher{k}`
variants) estimates: an estimate, not a bound. A bound follows from McDiarmid's inequality:
sup_h (1/n) sum_i sigma_i h(x_i) changes by at most 2/n when one sign flips, so the mean over K
draws (nK signs) exceeds its expectation by t with probability at most exp(-nK t^2 / 2), and
with probability 1 - delta over the draws, R >= estimate - sqrt(2 ln(1/delta) / (nK)).
"""

import math

import pandas as pd

from rethink.data.variants import parse_variant
from rethink.files import atomic_path
from rethink.results.aggregate import read_table

CONFIDENCE = 0.95


def deviation(n: int, draws: int, confidence: float = CONFIDENCE) -> float:
    """How far the mean over `draws` draws of n signs may exceed its expectation, at
    `confidence` (McDiarmid's inequality, bounded differences 2/n per sign)."""
    return math.sqrt(2 * math.log(1 / (1 - confidence)) / (n * draws))


def rademacher_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs.variant.map(lambda v: parse_variant(v).rademacher)]


def rademacher_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model and regularizer: draws and runs, mean training and test accuracy, the estimate
    mean(2 acc - 1) of the empirical Rademacher complexity (each draw's seeds averaged first),
    the smallest draw's value, and the lower bound that holds with 95% probability."""
    signs = rademacher_runs(runs).assign(correlation=lambda t: 2 * t.train_acc - 1)
    rows = []
    for (model, regularizer), group in signs.groupby(["model", "regularizer"], sort=False):
        per_draw = group.groupby("variant").correlation.mean()
        estimate = float(per_draw.mean())
        slack = deviation(int(group.train_images.min()), len(per_draw))
        rows.append({
            "model": model, "regularizer": regularizer, "draws": len(per_draw),
            "runs": len(group), "train_images": int(group.train_images.min()),
            "train_acc": group.train_acc.mean(), "test_acc": group.test_acc.mean(),
            "complexity_estimate": estimate, "smallest_draw": float(per_draw.min()),
            "deviation_95": slack, "complexity_lower_bound_95": estimate - slack,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


COLUMNS = [
    "model", "regularizer", "draws", "runs", "train_images", "train_acc", "test_acc",
    "complexity_estimate", "smallest_draw", "deviation_95", "complexity_lower_bound_95",
]  # fmt: skip


def write_rademacher_table(runs_csv: str, dataset: str, out: dict) -> pd.DataFrame:
    """rademacher.csv (numbers) and rademacher.md for one dataset."""
    runs = read_table(runs_csv)
    table = rademacher_table(runs[runs.dataset == dataset])
    with atomic_path(out["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out["md"]) as tmp:
        tmp.write_text(table.to_markdown(index=False, floatfmt=".4f") + "\n")
    return table
