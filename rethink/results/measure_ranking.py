"""Which measure tracks generalization: Kendall's rank correlation between each measure and the
generalization gap (training minus test accuracy) over a study's fitted runs, overall and
granulated per factor (Jiang et al. 2020, Section 4: for each factor, the mean tau over the
groups of runs in which only that factor varies).

measures.csv: one row per run and measure. measure-ranking.csv / .md: one row per measure.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from rethink.files import atomic_path
from rethink.measures import MEASURES
from rethink.results.aggregate import read_table
from rethink.runs import RUN_FIELDS

FACTORS = ["variant", "model", "regularizer", "seed"]  # the dataset is fixed within a table
# What the mean granulated tau (Jiang et al.'s Psi) averages: the hyperparameters. A seed is not
# one: its column compares runs whose gaps differ by chance alone.
HYPERPARAMETERS = ["variant", "model", "regularizer"]


def kendall_tau(x, y) -> float:
    """Kendall's tau-b of x and y over the pairs where both are known (infinities rank beyond
    every number); NaN with fewer than two such points or where either is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    known = ~(np.isnan(x) | np.isnan(y))
    # tau depends on the order alone: ranks, in which infinities compare like numbers
    x, y = (np.unique(v[known], return_inverse=True)[1] for v in (x, y))
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    untied = np.count_nonzero(dx) * np.count_nonzero(dy)
    return float((dx * dy).sum() / np.sqrt(untied)) if untied else float("nan")


def granulated_tau(runs: pd.DataFrame, measure: str, factor: str) -> tuple[float, int]:
    """(the mean tau between `measure` and the gap over the groups of runs that agree on every
    factor but `factor`, the number of groups with a tau)."""
    others = [f for f in FACTORS if f != factor]
    taus = [
        kendall_tau(group[measure], group.gap)
        for _, group in runs.groupby(others)
        if group[factor].nunique() >= 2
    ]
    taus = [t for t in taus if not np.isnan(t)]
    return (float(np.mean(taus)) if taus else float("nan")), len(taus)


def measure_table(runs: pd.DataFrame, measure_files: list[str | Path]) -> pd.DataFrame:
    """One row per run and measure: the run's keys, whether it fitted, its training and test
    accuracy and gap, the measure's family, name and value (NaN: undefined for that run), from
    rule measure_runs' tables `measure_files`."""
    table = pd.concat([read_table(path) for path in measure_files])
    accuracies = runs[[*RUN_FIELDS, "fitted", "train_acc", "test_acc"]]
    table = table.merge(accuracies, on=RUN_FIELDS, how="left", validate="many_to_one")
    table["gap"] = table.train_acc - table.test_acc
    table["family"] = table.measure.map(lambda m: MEASURES[m].family)
    return table[[*RUN_FIELDS, "fitted", "train_acc", "test_acc", "gap", "family", "measure",
                  "value"]]  # fmt: skip


def ranking(table: pd.DataFrame) -> pd.DataFrame:
    """One row per measure, over the fitted runs: tau with the gap over all of them, the
    granulated tau per factor with its number of groups, and the mean of the granulated taus
    (Jiang et al.'s Psi, over the hyperparameters, not the seed, that have a group)."""
    fitted = table[table.fitted.astype(bool)]
    wide = fitted.pivot(index=[*RUN_FIELDS, "gap"], columns="measure", values="value")
    wide = wide.reset_index()
    rows = []
    for measure in MEASURES:
        values = wide[measure] if measure in wide else pd.Series(np.nan, index=wide.index)
        row = {
            "measure": measure,
            "family": MEASURES[measure].family,
            "runs": int(values.notna().sum()),
            "tau": kendall_tau(values, wide.gap),
        }
        granulated = []
        for factor in FACTORS:
            tau, groups = granulated_tau(wide.assign(**{measure: values}), measure, factor)
            row[f"tau_{factor}"], row[f"groups_{factor}"] = tau, groups
            if groups and factor in HYPERPARAMETERS:
                granulated.append(tau)
        row["tau_granulated_mean"] = float(np.mean(granulated)) if granulated else np.nan
        rows.append(row)
    return pd.DataFrame(rows).sort_values("tau", ascending=False, na_position="last")


def ranking_markdown(ranked: pd.DataFrame, n_runs: int) -> str:
    """The ranking as a Markdown table: measures by their tau with the gap over all fitted
    runs, the granulated taus with each factor's number of groups in the header."""
    factors = [f for f in FACTORS if ranked[f"groups_{f}"].max() > 0]
    header = ["measure", "family", "tau (all)"]
    header += [f"{f} ({int(ranked[f'groups_{f}'].max())} groups)" for f in factors]
    header.append("mean granulated (no seed)")
    lines = [f"Kendall's tau with the generalization gap over {n_runs} fitted runs", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]  # fmt: skip

    def cell(value):
        return "" if np.isnan(value) else f"{value:+.2f}"

    for row in ranked.itertuples():
        cells = [f"`{row.measure}`", row.family, cell(row.tau)]
        cells += [cell(getattr(row, f"tau_{f}")) for f in factors]
        cells.append(cell(row.tau_granulated_mean))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_measure_tables(runs_csv: str, measure_files: list[str], dataset: str, out: dict):
    """measures.csv, measure-ranking.csv and measure-ranking.md of one dataset."""
    runs = read_table(runs_csv)
    table = measure_table(runs[runs.dataset == dataset], measure_files)
    ranked = ranking(table)
    n_runs = table[table.fitted.astype(bool)][RUN_FIELDS].drop_duplicates().shape[0]
    for name, frame in (("measures", table), ("ranking", ranked)):
        with atomic_path(out[name]) as tmp:
            frame.to_csv(tmp, index=False)
    with atomic_path(out["md"]) as tmp:
        tmp.write_text(ranking_markdown(ranked, n_runs))
    return ranked
