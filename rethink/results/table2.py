"""Table 2 of Zhang et al. (2017): Inception V3 on ImageNet under augmentation, dropout and
weight decay, on true and random labels; top-1 train, top-1 test (and its best value along
training: early stopping) and top-5 test accuracy, ours beside the paper's. As the paper's TF
evaluation measured them: of the moving average of the weights where a run keeps one
(training.average_decay), else of the weights; the `weights` column says which."""

from importlib import resources

import pandas as pd

from rethink.results.aggregate import mean_ci95, read_table, save_table
from rethink.training.regularizers import RegularizerNameError, parse_regularizer

COLUMNS = ("augment", "dropout", "wd")  # the regularizers of the table's columns
METRICS = {  # ours (runs.csv) -> the paper's column
    "train_acc": "train_top1", "test_acc": "test_top1", "best_test_acc": "best_test_top1",
    "test_top5": "test_top5",
}  # fmt: skip

PAPER_TABLE2 = resources.files("rethink.results").joinpath("zhang2017_table2.csv")


def paper_table2() -> pd.DataFrame:
    with PAPER_TABLE2.open() as f:
        return pd.read_csv(f, comment="#")


def cell(regularizer: str) -> tuple[str, str, str] | None:
    """(augment, dropout, wd) as yes/no, or None for a regularizer outside the table."""
    try:
        parts = parse_regularizer(regularizer)
    except RegularizerNameError:
        return None
    if not set(parts) <= set(COLUMNS):
        return None
    return tuple("yes" if c in parts else "no" for c in COLUMNS)


# Each metric of METRICS, measured with the moving average of the weights.
AVERAGED = {
    "train_acc": "averaged_train_acc", "test_acc": "averaged_test_acc",
    "best_test_acc": "best_averaged_test_acc", "test_top5": "averaged_test_top5",
}  # fmt: skip


def as_evaluated(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs with METRICS of their averaged weights where they kept an average, and a
    `weights` column: averaged or raw."""
    runs = runs.copy()
    averaged = runs.get("averaged_test_acc", pd.Series(float("nan"), index=runs.index)).notna()
    for raw, average in AVERAGED.items():
        if average in runs:
            runs[raw] = runs[average].where(averaged, runs[raw])
    runs["weights"] = averaged.map({True: "averaged", False: "raw"})
    return runs


def table2_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that fill a Table 2 row: true or random labels, regularized by any of
    augmentation, dropout and weight decay."""
    in_table = runs.regularizer.map(lambda r: cell(r) is not None)
    return runs[runs.variant.isin(["true", "random"]) & in_table]


def table2(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, labels, augment, dropout, wd) the runs cover; percent."""
    rows = []
    for (model, labels, regularizer), group in as_evaluated(table2_runs(runs)).groupby(
        ["model", "variant", "regularizer"]
    ):
        row = dict(zip(["model", "labels", *COLUMNS], [model, labels, *cell(regularizer)],
                       strict=True)) | {"seeds": len(group)}  # fmt: skip
        row["weights"] = "+".join(sorted(set(group.weights)))
        for ours in METRICS:
            values = group[ours] if ours in group else pd.Series(dtype=float)
            mean, low, high = mean_ci95(100 * values)
            row |= {ours: mean, f"{ours}_ci95_low": low, f"{ours}_ci95_high": high}
        rows.append(row)
    keys = ["labels", *COLUMNS]
    paper = paper_table2().drop(columns="model")
    paper = paper.rename(columns={p: f"paper_{p}" for p in [*METRICS.values(), "confirmed"]})
    table = pd.DataFrame(rows).merge(paper, on=keys, how="left")
    order = {tuple(r): i for i, r in enumerate(paper[keys].itertuples(index=False))}
    table["_order"] = [order.get(tuple(k), len(order)) for k in table[keys].itertuples(index=False)]
    return table.sort_values(["_order", "model"]).drop(columns="_order").reset_index(drop=True)


def _percent(value) -> str:
    return "–" if pd.isna(value) else f"{value:.2f}"


def formatted(table: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """As the paper prints it: test top-1 with its best along training in parentheses."""
    out = table[["model", "labels", *COLUMNS, "seeds", "weights"]].copy()
    for label, (ours, paper) in {
        "top-1 train": ("train_acc", "paper_train_top1"),
        "top-5 test": ("test_top5", "paper_test_top5"),
    }.items():
        out[f"{label} ({dataset})"] = table[ours].map(_percent)
        out[f"{label} (paper)"] = table[paper].map(_percent)
    for side, (last, best) in {
        dataset: ("test_acc", "best_test_acc"),
        "paper": ("paper_test_top1", "paper_best_test_top1"),
    }.items():
        out[f"top-1 test ({side})"] = [
            _percent(a) + ("" if pd.isna(b) else f" ({_percent(b)})")
            for a, b in zip(table[last], table[best], strict=True)
        ]
    return out[[
        "model", "labels", *COLUMNS, "seeds", "weights", f"top-1 train ({dataset})",
        "top-1 train (paper)",
        f"top-1 test ({dataset})", "top-1 test (paper)", f"top-5 test ({dataset})",
        "top-5 test (paper)",
    ]]  # fmt: skip


def write_table2(runs_csv: str, dataset: str, out: dict) -> None:
    """table2.csv (numbers), table2.md and table2.tex (formatted) for one dataset."""
    runs = read_table(runs_csv)
    table = table2(runs[runs.dataset == dataset])
    caption = (
        f"Table 2 on {dataset} beside the paper's ImageNet numbers (Zhang et al., 2017); "
        "parentheses: best test accuracy along training; weights: averaged (a moving average, "
        "as TF's evaluation) or raw."
    )
    save_table(table, formatted(table, dataset), out, caption, "tab:table2")
