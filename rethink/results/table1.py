"""Table 1 of Zhang et al. (2017) on a study's dataset, beside what the paper claims on CIFAR-10.

What carries over from CIFAR-10 to another dataset is qualitative: whether a network fits its
training set, how much better true labels generalize than random ones, and what a regularizer
changes. So each row gives, on the study's dataset, how many seeds fitted, the accuracies (a
Student-t 95% interval over 3 or more seeds, else each seed's value), the test set's binomial
standard error, the steps to fit (on random labels also as a multiple of true labels', the
paper's Fig. 1b), and the test accuracy's change against the row it is compared with (true
against random labels; a regularizer against none); and, in columns of their own, the paper's
CIFAR-10 numbers and change for the same cell, of the paper's model the row's model is or
stands in for (rethink.models.paper_model).
"""

import math
from importlib import resources

import pandas as pd
from scipy import stats

from rethink.models import paper_model
from rethink.results.aggregate import MIN_SEEDS_FOR_INTERVAL, mean_ci95, read_table, save_table

# The (crop, wd) cell of the paper's table that each of our regularizers fills.
CELL = {"none": ("no", "no"), "wd": ("no", "yes"), "crop": ("yes", "no"), "crop+wd": ("yes", "yes")}
KEYS = ["model", "labels", "crop", "wd"]

# The paper's numbers, with the citation in its header comment.
PAPER_TABLE1 = resources.files("rethink.results").joinpath("zhang2017_table1.csv")


def paper_table1() -> pd.DataFrame:
    with PAPER_TABLE1.open() as f:
        return pd.read_csv(f, comment="#")


def table1_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that fill a Table 1 row: true labels under none, wd, crop or crop+wd, and
    random labels under none."""
    return runs[
        ((runs.variant == "true") & runs.regularizer.isin(CELL))
        | ((runs.variant == "random") & (runs.regularizer == "none"))
    ]


def reference(labels: str, crop: str, wd: str) -> tuple[str, str, str] | None:
    """The (labels, crop, wd) cell a row's test accuracy is compared with: true labels without
    regularizer against random labels; a regularized row against the same labels without."""
    if labels == "true" and (crop, wd) == ("no", "no"):
        return ("random", "no", "no")
    if (crop, wd) != ("no", "no"):
        return (labels, "no", "no")
    return None


def difference_ci95(a: pd.Series, b: pd.Series) -> tuple[float, float, float]:
    """mean(a) - mean(b) and Welch's 95% interval when both have 3 or more values (else
    NaN bounds)."""
    difference = a.mean() - b.mean()
    if min(len(a), len(b)) < MIN_SEEDS_FOR_INTERVAL:
        return difference, math.nan, math.nan
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return difference, float(interval.low), float(interval.high)


def table1(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, labels, crop, wd) that the runs cover; accuracies in percent."""
    cells = table1_runs(runs).assign(
        labels=lambda t: t.variant,
        crop=lambda t: t.regularizer.map(lambda r: CELL[r][0]),
        wd=lambda t: t.regularizer.map(lambda r: CELL[r][1]),
    )
    groups = {key: group for key, group in cells.groupby(KEYS)}
    paper = paper_table1().set_index(KEYS)
    rows = []
    for (model, labels, crop, wd), group in groups.items():
        row = dict(model=model, labels=labels, crop=crop, wd=wd, seeds=len(group))
        row["fitted"] = int(group.fitted.sum())
        for split in ("train", "test"):
            accuracy = 100 * group[f"{split}_acc"]
            mean, low, high = mean_ci95(accuracy)
            row |= {f"{split}_acc": mean, f"{split}_ci95_low": low, f"{split}_ci95_high": high}
            row[f"{split}_seeds"] = ";".join(f"{value:.2f}" for value in accuracy)
        row["steps_to_fit"] = group.steps_to_fit.mean()  # of the seeds that fitted
        row["steps_vs_true"] = math.nan
        if (labels, crop, wd) == ("random", "no", "no") and (model, "true", "no", "no") in groups:
            row["steps_vs_true"] = row["steps_to_fit"] / groups[model, "true", "no", "no"].steps_to_fit.mean()
        p = row["test_acc"] / 100
        n = group["test_images"].min() if "test_images" in group else math.nan  # older runs
        row["test_binomial_se"] = 100 * math.sqrt(p * (1 - p) / n)
        other = reference(labels, crop, wd)
        row["compared_with"] = "" if other is None else "/".join(other)
        change = (math.nan,) * 3
        if other is not None and (model, *other) in groups:
            change = difference_ci95(accuracy, 100 * groups[model, *other].test_acc)
        row |= dict(zip(["test_change", "test_change_ci95_low", "test_change_ci95_high"], change))
        claim = (paper_model(model), labels, crop, wd)
        row["paper_model"] = claim[0]
        row["paper_train_acc"] = paper.train_acc.get(claim, math.nan)
        row["paper_test_acc"] = paper.test_acc.get(claim, math.nan)
        reference_claim = (claim[0], *other) if other else None
        row["paper_test_change"] = (
            row["paper_test_acc"] - paper.test_acc[reference_claim]
            if reference_claim in paper.index
            else math.nan
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    order = {key: i for i, key in enumerate(paper.index)}
    rank = [order.get((paper_model(m), *rest), len(order)) for m, *rest in table[KEYS].values]
    return table.assign(_order=rank).sort_values(["_order", *KEYS]).drop(columns="_order")


def _accuracy(mean: float, low: float, high: float, seeds: str) -> str:
    """`mean [low, high]` from 3 or more seeds; each seed's value from 2; the value from 1."""
    if pd.isna(mean):
        return "–"
    if not pd.isna(low):
        return f"{mean:.2f} [{low:.2f}, {high:.2f}]"
    values = seeds.split(";")
    return values[0] if len(values) == 1 else "seeds: " + ", ".join(values)


def _change(change: float, low: float, high: float, compared_with: str) -> str:
    if pd.isna(change):
        return "–"
    versus = {"random/no/no": "random labels", "true/no/no": "none"}.get(compared_with)
    interval = "" if pd.isna(low) else f" [{low:+.1f}, {high:+.1f}]"
    return f"{change:+.1f}{interval} vs {versus or compared_with}"


def _number(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.2f}"


def formatted(table: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Our columns, then the paper's CIFAR-10 claim for the same cell in columns of its own."""
    out = table[["model", "labels", "crop", "wd", "seeds"]].copy()
    out["fitted"] = [f"{f} of {s}" for f, s in zip(table.fitted, table.seeds)]
    for split in ("train", "test"):
        out[f"{dataset}: {split} %"] = [
            _accuracy(*values)
            for values in table[
                [f"{split}_acc", f"{split}_ci95_low", f"{split}_ci95_high", f"{split}_seeds"]
            ].itertuples(index=False)
        ]
    out["test s.e. (binomial)"] = table.test_binomial_se.map(lambda v: f"{v:.2f}")
    out["steps to fit"] = [
        "–" if pd.isna(steps) else f"{steps:.0f}" + ("" if pd.isna(ratio) else f" ({ratio:.2f}x true)")
        for steps, ratio in zip(table.steps_to_fit, table.steps_vs_true)
    ]
    out[f"{dataset}: test change"] = [
        _change(*values)
        for values in table[
            ["test_change", "test_change_ci95_low", "test_change_ci95_high", "compared_with"]
        ].itertuples(index=False)
    ]
    out["paper's model"] = table.paper_model
    out["paper, CIFAR-10: train %"] = table.paper_train_acc.map(_number)
    out["paper, CIFAR-10: test %"] = table.paper_test_acc.map(_number)
    out["paper, CIFAR-10: test change"] = table.paper_test_change.map(
        lambda v: "–" if pd.isna(v) else f"{v:+.1f}"
    )
    return out


def write_table1(runs_csv: str, dataset: str, out: dict) -> None:
    """table1.csv (numbers), table1.md and table1.tex (formatted) for one dataset."""
    runs = read_table(runs_csv)
    table = table1(runs[runs.dataset == dataset])
    caption = (
        f"Table 1's cells on {dataset}, and in separate columns what Zhang et al. (2017) report "
        "for the same cell on CIFAR-10: what carries over is whether a network fits and the "
        "direction and size of each change, not the accuracies."
    )
    save_table(table, formatted(table, dataset), out, caption, "tab:table1")
