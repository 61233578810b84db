"""The empirical Rademacher complexity bound of Section 5 of the paper, measured.

For random signs sigma on the n training points, a classifier h trained to fit them reaches
(1/n) sum_i sigma_i h(x_i) = 2 acc - 1, where acc is its training accuracy. Its class's empirical
Rademacher complexity, E_sigma sup_h (1/n) sum_i sigma_i h(x_i), is then at least the mean of
2 acc - 1 over independent draws (the `rademacher{k}` variants): ~1 when the networks fit the
signs, so the generalization bound it gives is trivial.
"""

import pandas as pd

from rethink.results.aggregate import read_table
from rethink.files import atomic_path
from rethink.data.variants import parse_variant


def rademacher_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs.variant.map(lambda v: parse_variant(v).rademacher)]


def rademacher_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model and regularizer: draws and runs, mean training accuracy, and the lower bound
    2 acc - 1 on the empirical Rademacher complexity (mean over runs, and the smallest)."""
    signs = rademacher_runs(runs).assign(bound=lambda t: 2 * t.train_acc - 1)
    return (
        signs.groupby(["model", "regularizer"], sort=False)
        .agg(
            draws=("variant", "nunique"),
            runs=("variant", "size"),
            train_acc=("train_acc", "mean"),
            test_acc=("test_acc", "mean"),
            complexity_lower_bound=("bound", "mean"),
            smallest_bound=("bound", "min"),
        )
        .reset_index()
    )


def write_rademacher_table(runs_csv: str, dataset: str, out: dict) -> pd.DataFrame:
    """rademacher.csv (numbers) and rademacher.md for one dataset."""
    runs = read_table(runs_csv)
    table = rademacher_table(runs[runs.dataset == dataset])
    with atomic_path(out["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out["md"]) as tmp:
        tmp.write_text(table.to_markdown(index=False, floatfmt=".4f") + "\n")
    return table
