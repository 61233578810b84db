"""Whether a lower precision changes a study's results: two finished copies of one study, run
in two precisions (e.g. fp32 and bf16), compared run by run from their results/tables/runs.csv.

Per run: fitted in each, the test accuracy difference (second minus first) and the ratio of
steps to fit (second over first); per model, a summary. Prints the summary, every run in a
compact grid and every run in full as Markdown and, with --out, writes the full per-run table as
a tidy CSV.

Usage: python benchmarks/precision_fidelity.py FIRST_CHECKOUT SECOND_CHECKOUT
       [--labels fp32 bf16] [--out fidelity.csv]
"""

import argparse
from pathlib import Path

import pandas as pd

from rethink.results.aggregate import KEYS


def compare(first: pd.DataFrame, second: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    a, b = labels
    columns = ["fitted", "test_acc", "steps_to_fit", "seconds"]
    runs = first[KEYS + columns].merge(
        second[KEYS + columns], on=KEYS, suffixes=(f"_{a}", f"_{b}"), validate="one_to_one"
    )
    if len(runs) != len(first) or len(runs) != len(second):
        raise SystemExit(f"the two studies have different runs ({len(first)} and {len(second)})")
    runs["test_acc_diff"] = runs[f"test_acc_{b}"] - runs[f"test_acc_{a}"]
    runs["steps_to_fit_ratio"] = runs[f"steps_to_fit_{b}"] / runs[f"steps_to_fit_{a}"]
    runs["seconds_ratio"] = runs[f"seconds_{b}"] / runs[f"seconds_{a}"]
    return runs.drop(columns=["dataset", "p"])


def per_model(runs: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    a, b = labels
    return (
        runs.groupby("model", sort=False)
        .agg(
            runs=("seed", "size"),
            **{f"fitted {a}": (f"fitted_{a}", "sum"), f"fitted {b}": (f"fitted_{b}", "sum")},
            test_acc_diff_mean=("test_acc_diff", "mean"),
            test_acc_diff_max_abs=("test_acc_diff", lambda d: d.abs().max()),
            steps_to_fit_ratio_median=("steps_to_fit_ratio", "median"),
            steps_to_fit_ratio_min=("steps_to_fit_ratio", "min"),
            steps_to_fit_ratio_max=("steps_to_fit_ratio", "max"),
            **{f"seconds {a}": (f"seconds_{a}", "sum"), f"seconds {b}": (f"seconds_{b}", "sum")},
        )
        .assign(training_time_ratio=lambda t: t[f"seconds {b}"] / t[f"seconds {a}"])
    )


def run_matrix(runs: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    """Every run in one compact grid: a row per (variant, regularizer, seed), a column per
    model, each cell "test accuracy difference in points / steps-to-fit ratio" (ratio "-" when
    not fitted in either, "UNFITTED in ..." when fitted in one only)."""
    a, b = labels

    def cell(run) -> str:
        fitted = (run[f"fitted_{a}"], run[f"fitted_{b}"])
        ratio = f"{run.steps_to_fit_ratio:.2f}" if all(fitted) else "-"
        if fitted[0] != fitted[1]:
            ratio = f"UNFITTED in {b if fitted[0] else a}"
        return f"{100 * run.test_acc_diff:+.1f} / {ratio}"

    cells = runs.assign(cell=runs.apply(cell, axis=1))
    grid = cells.pivot_table(
        index=["variant", "regularizer", "seed"], columns="model", values="cell",
        aggfunc="first", sort=False,
    )  # fmt: skip
    return grid.fillna("").reset_index()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="checkout (or results/tables/runs.csv)")
    parser.add_argument("second", type=Path)
    parser.add_argument("--labels", nargs=2, default=["fp32", "bf16"])
    parser.add_argument("--out", type=Path, help="per-run CSV")
    args = parser.parse_args()

    def runs_table(path: Path) -> pd.DataFrame:
        return pd.read_csv(path if path.suffix == ".csv" else path / "results/tables/runs.csv")

    labels = tuple(args.labels)
    runs = compare(runs_table(args.first), runs_table(args.second), labels)
    a, b = labels
    fitted_a, fitted_b = runs[f"fitted_{a}"], runs[f"fitted_{b}"]
    print(
        f"{len(runs)} runs; fitted in {a}: {fitted_a.sum()}, in {b}: {fitted_b.sum()}; "
        f"fitted in one and not the other: {(fitted_a != fitted_b).sum()}; training time "
        f"{runs[f'seconds_{a}'].sum():.0f} s and {runs[f'seconds_{b}'].sum():.0f} s"
    )
    print(per_model(runs, labels).round(3).to_markdown())
    print()
    print(run_matrix(runs, labels).to_markdown(index=False))
    print()
    print(runs.to_markdown(index=False, floatfmt=".3f"))
    if args.out:
        runs.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
