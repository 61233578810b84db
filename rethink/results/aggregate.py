"""Collect finished runs into tidy tables, one row per run, epoch or block of steps.

A run's keys come from its folder (rethink.runs.RunKey), so the tables need nothing but the
files each run wrote.
"""

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
from scipy import stats

from rethink.data.variants import label_corruption
from rethink.files import atomic_path
from rethink.runs import RUN_FIELDS, RunKey

# A run's keys, with its variant's label-corruption level p beside the variant's name.
KEYS = [*RUN_FIELDS[:2], "p", *RUN_FIELDS[2:]]


def run_keys(run_dir: str | Path) -> dict:
    """The KEYS of the run stored in `run_dir`."""
    key = dataclasses.asdict(RunKey.from_path(run_dir))
    return {k: label_corruption(key["variant"]) if k == "p" else key[k] for k in KEYS}


# Key columns stay text: a study whose only variant is `true` would otherwise read as booleans.
TEXT_KEYS = {key: str for key in ("dataset", "variant", "model", "regularizer")}


def read_table(path) -> pd.DataFrame:
    """A table this module wrote (runs.csv, histories.csv, steps.csv), keys as written."""
    return pd.read_csv(path, dtype=TEXT_KEYS)


def collect_runs(summary_paths: list[str]) -> pd.DataFrame:
    """One row per run: its keys, then every field of its summary.json but the nested config."""
    rows = []
    for path in summary_paths:
        summary = json.loads(Path(path).read_text())
        summary.pop("config", None)
        rows.append({**run_keys(Path(path).parent), **summary})
    return pd.DataFrame(rows).sort_values(KEYS, ignore_index=True)


def collect_curves(csv_paths: list[str]) -> pd.DataFrame:
    """history.csv or steps.csv files of many runs, stacked with the runs' keys in front."""
    frames = []
    for path in csv_paths:
        table = pd.read_csv(path)
        for key, value in reversed(run_keys(Path(path).parent).items()):
            table.insert(0, key, value)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


# Fewer seeds give no interval: from 2, Student's t is 12.7 and the interval says little but
# how the two seeds differ (tables and figures show those seeds themselves instead).
MIN_SEEDS_FOR_INTERVAL = 3


def mean_ci95(values: pd.Series) -> tuple[float, float, float]:
    """Mean and Student-t 95% interval over seeds; fewer than MIN_SEEDS_FOR_INTERVAL values
    give an empty (NaN) interval."""
    values = values.dropna()
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    if n < MIN_SEEDS_FOR_INTERVAL:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def write_tables(summaries: list[str], histories: list[str], steps: list[str], out: dict) -> None:
    """runs.csv, histories.csv and steps.csv under the paths in `out`."""
    for name, table in (
        ("runs", collect_runs(summaries)),
        ("histories", collect_curves(histories)),
        ("steps", collect_curves(steps)),
    ):
        with atomic_path(out[name]) as tmp:
            table.to_csv(tmp, index=False)


def save_table(numbers: pd.DataFrame, pretty: pd.DataFrame, out: dict, caption: str, label: str):
    """A paper table: its numbers as CSV, formatted as Markdown and LaTeX, to the paths in
    `out` (csv, md, tex), each written whole or not at all."""
    with atomic_path(out["csv"]) as tmp:
        numbers.to_csv(tmp, index=False)
    with atomic_path(out["md"]) as tmp:
        tmp.write_text(pretty.to_markdown(index=False, disable_numparse=True) + "\n")
    with atomic_path(out["tex"]) as tmp:
        tmp.write_text(pretty.to_latex(index=False, caption=caption, label=label))
