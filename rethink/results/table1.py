"""Table 1 of Zhang et al. (2017): train and test accuracy with and without random crop and
weight decay, on true and random labels, ours beside the paper's (CIFAR-10) numbers."""

from importlib import resources

import pandas as pd

from rethink.results.aggregate import mean_ci95, read_table, save_table

# The (crop, wd) cell of the paper's table that each of our regularizers fills.
CELL = {"none": ("no", "no"), "wd": ("no", "yes"), "crop": ("yes", "no"), "crop+wd": ("yes", "yes")}


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


def table1(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, labels, crop, wd) that the runs cover; accuracies in percent."""
    cells = table1_runs(runs)
    rows = []
    for (model, labels, regularizer), group in cells.groupby(["model", "variant", "regularizer"]):
        crop, wd = CELL[regularizer]
        row = dict(model=model, labels=labels, crop=crop, wd=wd, seeds=len(group))
        for split in ("train", "test"):
            mean, low, high = mean_ci95(100 * group[f"{split}_acc"])
            row |= {f"{split}_acc": mean, f"{split}_ci95_low": low, f"{split}_ci95_high": high}
        rows.append(row)
    ours = pd.DataFrame(rows)
    paper = paper_table1().rename(
        columns={"train_acc": "paper_train_acc", "test_acc": "paper_test_acc"}
    )
    keys = ["model", "labels", "crop", "wd"]
    table = ours.merge(paper, on=keys, how="left")
    order = {tuple(row): i for i, row in enumerate(paper[keys].itertuples(index=False))}
    table["_order"] = [order.get(tuple(k), len(order)) for k in table[keys].itertuples(index=False)]
    return table.sort_values(["_order", *keys]).drop(columns="_order").reset_index(drop=True)


def _cell(mean: float, low: float, high: float) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.2f}" if pd.isna(low) else f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def formatted(table: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The table as the paper prints it, with 95% intervals over seeds in brackets."""
    out = table[["model", "labels", "crop", "wd", "seeds"]].copy()
    for split in ("train", "test"):
        out[f"{split} % ({dataset})"] = [
            _cell(*values)
            for values in table[
                [f"{split}_acc", f"{split}_ci95_low", f"{split}_ci95_high"]
            ].itertuples(index=False)
        ]
    out["train % (paper, CIFAR-10)"] = table.paper_train_acc.map(
        lambda v: "–" if pd.isna(v) else f"{v:.2f}"
    )
    out["test % (paper, CIFAR-10)"] = table.paper_test_acc.map(
        lambda v: "–" if pd.isna(v) else f"{v:.2f}"
    )
    return out


def write_table1(runs_csv: str, dataset: str, out: dict) -> None:
    """table1.csv (numbers), table1.md and table1.tex (formatted) for one dataset."""
    runs = read_table(runs_csv)
    table = table1(runs[runs.dataset == dataset])
    caption = f"Table 1 on {dataset} beside the paper's CIFAR-10 numbers (Zhang et al., 2017)."
    save_table(table, formatted(table, dataset), out, caption, "tab:table1")
