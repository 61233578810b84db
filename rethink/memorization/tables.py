"""A dataset's runs, example by example: tidy tables from their examples.h5 records.

- examples: one row per (run, training example): its labels; from the eval pass after each epoch
  (Arpit et al.), its first-learned and learned-for-good epochs; from its presentations in
  minibatches (Toneva et al.), its first-learned presentation, forgetting events, whether it
  was never learned, unforgettable or censored; and whether the first epoch got it right;
- epochs: one row per (run, epoch): the fraction of clean and of corrupted examples fitted to
  their assigned labels, and of corrupted ones predicted as their original label;
- critical: one row per (run, epoch measured, set of images): the critical sample ratio
  (rethink.memorization.critical);
- consistency: per (variant, model, regularizer) trained with two or more seeds, how alike the
  seeds' orders of learning are (Arpit et al. 2017, Section 3.1).
"""

import itertools
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from rethink.files import atomic_path
from rethink.results.aggregate import KEYS, run_keys

GROUP = ["dataset", "variant", "model", "regularizer"]


def read_record(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of one examples.h5, by name without the `epochs/` prefix; the critical
    samples, if measured, as `critical/...`."""
    with h5py.File(path, "r", locking=False) as f:
        record = {name: f[f"epochs/{name}"][()] for name in f["epochs"]}
        for name in ("assigned_label", "original_label", "corrupted"):
            record[name] = f[name][()]
        for name in f.get("critical", {}):
            record[f"critical/{name}"] = f[f"critical/{name}"][()]
    return record


def example_table(path: str | Path, record: dict | None = None) -> pd.DataFrame:
    """`record`: the file's arrays, if already read (read_record)."""
    record = record or read_record(path)
    fitted = record["predictions"] == record["assigned_label"]
    presented = record["presented_correct"]
    events = forgetting_events(presented)
    learned_presented = first_learned(presented)
    late = censored(learned_presented, len(presented))
    table = pd.DataFrame(
        {
            "example": np.arange(len(record["assigned_label"])),
            "assigned_label": record["assigned_label"],
            "original_label": record["original_label"],
            "corrupted": record["corrupted"],
            "first_learned": first_learned(fitted),
            "learned_for_good": learned_for_good(fitted),
            "first_learned_presented": learned_presented,
            "forgetting_events": events,
            "never_learned_presented": learned_presented == 0,
            "censored": late,
            "unforgettable": (learned_presented > 0) & (events == 0) & ~late,
            "fitted_epoch1": fitted[0],
        }
    )
    return _with_keys(table, path)


def epoch_table(path: str | Path, record: dict | None = None) -> pd.DataFrame:
    record = record or read_record(path)
    fitted = record["predictions"] == record["assigned_label"]
    as_original = record["predictions"] == record["original_label"]
    corrupted = record["corrupted"]
    table = pd.DataFrame(
        {
            "epoch": np.arange(1, len(fitted) + 1),
            "clean_fitted": _mean(fitted[:, ~corrupted]),
            "corrupted_fitted": _mean(fitted[:, corrupted]),
            "corrupted_as_original": _mean(as_original[:, corrupted]),
            "clean": int((~corrupted).sum()),
            "corrupted": int(corrupted.sum()),
        }
    )
    return _with_keys(table, path)


def critical_table(path: str | Path, record: dict | None = None) -> pd.DataFrame:
    """One row per (run, epoch measured, set): test, train-clean, train-corrupted images
    examined, how many were critical, and the critical sample ratio. Empty if the run did not
    measure it."""
    record = record or read_record(path)
    if "critical/epochs" not in record:
        return pd.DataFrame(columns=[*KEYS, *CRITICAL_COLUMNS])
    critical = {
        k.removeprefix("critical/"): v for k, v in record.items() if k.startswith("critical/")
    }
    corrupted = record["corrupted"]
    sets = {"test": (critical["test"], np.ones(critical["test"].shape[1], bool))}
    train_corrupted = corrupted[critical["train_index"]]
    sets["train-clean"] = (critical["train"], ~train_corrupted)
    sets["train-corrupted"] = (critical["train"], train_corrupted)
    rows = []
    for name, (found, members) in sets.items():
        if not members.any():
            continue
        for epoch, row in zip(critical["epochs"], found[:, members], strict=True):
            rows.append({"epoch": int(epoch), "set": name, "examined": len(row),
                         "critical": int(row.sum()), "csr": row.mean()})  # fmt: skip
    return _with_keys(pd.DataFrame(rows, columns=CRITICAL_COLUMNS), path)


CRITICAL_COLUMNS = ["epoch", "set", "examined", "critical", "csr"]


def consistency_table(examples: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, model, regularizer) with R >= 2 seeds and per group of examples (clean,
    corrupted): the mean Spearman correlation of first-learned epochs over pairs of seeds
    (never learned ranks last), and Arpit's test against equally hard examples: with mean
    first-epoch error e, R independent seeds would all get an example wrong with probability
    e^R and all right with (1 - e)^R; real patterns give more of both."""
    rows = []
    for keys, runs in examples.groupby(GROUP):
        seeds = sorted(runs.seed.unique())
        if len(seeds) < 2:
            continue
        for group, members in (("clean", ~runs.corrupted), ("corrupted", runs.corrupted)):
            by_seed = runs[members].pivot(
                index="example", columns="seed", values=["first_learned", "fitted_epoch1"]
            )
            if by_seed.empty:
                continue
            order = by_seed["first_learned"].replace(0, np.inf)
            pairs = [
                order[a].corr(order[b], method="spearman")
                for a, b in itertools.combinations(seeds, 2)
            ]
            wrong = ~by_seed["fitted_epoch1"].astype(bool)
            error, r = wrong.to_numpy().mean(), len(seeds)
            rows.append(
                dict(zip(GROUP, keys, strict=True))
                | {
                    "examples": group, "seeds": r, "n": len(by_seed),
                    "spearman_first_learned": float(np.mean(pairs)),
                    "error_epoch1": error,
                    "always_wrong": wrong.all(axis=1).mean(), "always_wrong_binomial": error**r,
                    "always_right": (~wrong).all(axis=1).mean(),
                    "always_right_binomial": (1 - error) ** r,
                }
            )  # fmt: skip
    return pd.DataFrame(rows, columns=[*GROUP, *CONSISTENCY_COLUMNS])


CONSISTENCY_COLUMNS = [
    "examples", "seeds", "n", "spearman_first_learned", "error_epoch1", "always_wrong",
    "always_wrong_binomial", "always_right", "always_right_binomial",
]  # fmt: skip


def write_memorization_tables(records: list[str], out: dict) -> None:
    """The examples, epochs and consistency tables (CSV, and Markdown for consistency) of the
    runs whose examples.h5 files are `records`, to the paths in `out`."""
    per_run = {name: [] for name in ("examples", "epochs", "critical")}
    for path in records:
        record = read_record(path)  # once per run, for its three tables
        per_run["examples"].append(example_table(path, record))
        per_run["epochs"].append(epoch_table(path, record))
        per_run["critical"].append(critical_table(path, record))
    examples, epochs, critical = (pd.concat(t, ignore_index=True) for t in per_run.values())
    consistency = consistency_table(examples)
    tables = {"examples": examples, "epochs": epochs, "critical": critical,
              "consistency": consistency}  # fmt: skip
    for name, table in tables.items():
        with atomic_path(out[name]) as tmp:
            table.to_csv(tmp, index=False)
    with atomic_path(out["consistency_md"]) as tmp:
        tmp.write_text(consistency.to_markdown(index=False, floatfmt=".3f") + "\n")


def _mean(values: np.ndarray) -> np.ndarray:
    """Per row, the mean over the columns; NaN where there are none (no corrupted examples)."""
    if values.shape[1] == 0:
        return np.full(len(values), np.nan)
    return values.mean(axis=1)


def _with_keys(table: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    keys = run_keys(Path(path).parent)
    return pd.concat([pd.DataFrame({k: [keys[k]] * len(table) for k in KEYS}), table], axis=1)


def first_learned(correct: np.ndarray) -> np.ndarray:
    """Per example, the first epoch (1-based) at which it is classified correctly; 0 if never.
    `correct`: epochs x examples."""
    correct = np.asarray(correct, bool)
    return np.where(correct.any(axis=0), correct.argmax(axis=0) + 1, 0)


def learned_for_good(correct: np.ndarray) -> np.ndarray:
    """Per example, the epoch from which it stays correct to the last one; 0 if it is wrong at
    the last epoch."""
    correct = np.asarray(correct, bool)
    wrong_after = np.flip(np.logical_or.accumulate(np.flip(~correct, axis=0), axis=0), axis=0)
    # an example is learned for good at epoch e when no epoch from e on is wrong
    return first_learned(~wrong_after)


def forgetting_events(presented_correct: np.ndarray) -> np.ndarray:
    """Per example, how often it went from correct at one presentation to wrong at the next."""
    hits = np.asarray(presented_correct, bool)
    return (hits[:-1] & ~hits[1:]).sum(axis=0)


# An example first learned in the last tenth of its presentations (at least the last one) had
# too few chances to be forgotten to count as unforgettable: it is censored.
CENSORED_FRACTION = 0.1


def censored(first_learned_presented: np.ndarray, presentations: int) -> np.ndarray:
    """Per example, whether it was first learned (1-based presentation; 0: never) in the last
    CENSORED_FRACTION of `presentations`, at least the last one."""
    window = max(1, int(np.ceil(CENSORED_FRACTION * presentations)))
    return first_learned_presented > presentations - window
