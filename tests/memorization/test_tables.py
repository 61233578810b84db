"""The memorization tables against values worked out by hand from small records this test
writes: every column users read, for the examples, epochs, critical-sample and consistency
tables, and the files they are written to."""

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from rethink.memorization.tables import (
    CONSISTENCY_COLUMNS,
    CRITICAL_COLUMNS,
    censored,
    consistency_table,
    critical_table,
    epoch_table,
    example_table,
    write_memorization_tables,
)
from rethink.results.aggregate import KEYS

# 3 epochs x 4 training examples; examples 2 and 3 have corrupted labels (original 0 and 1).
ASSIGNED, ORIGINAL = [0, 1, 2, 2], [0, 1, 0, 1]
CORRUPTED = [False, False, True, True]
PREDICTIONS = [[0, 0, 0, 2], [0, 1, 2, 1], [0, 1, 2, 2]]  # epoch x example
PRESENTED = [[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 1, 0]]  # correct in its minibatch
# critical samples at epochs 1 and 3: 3 test images; training images 0 (clean) and 3 (corrupted)
CRITICAL = {
    "epochs": [1, 3], "test": [[1, 0, 1], [0, 0, 1]], "train": [[1, 1], [0, 1]],
    "test_index": [0, 1, 2], "train_index": [0, 3],
}  # fmt: skip


def write_record(path, predictions=PREDICTIONS, critical=CRITICAL):
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        f["epochs/predictions"] = np.asarray(predictions, np.uint8)
        f["epochs/presented_correct"] = np.asarray(PRESENTED, bool)
        f["assigned_label"], f["original_label"] = ASSIGNED, ORIGINAL
        f["corrupted"] = np.asarray(CORRUPTED)
        for name, values in (critical or {}).items():
            f[f"critical/{name}"] = np.asarray(values, bool if name in ("test", "train") else int)
    return path


@pytest.fixture
def record(tmp_path):
    return write_record(tmp_path / "runs/mnist5k/corrupt0.5/mlp1x512/none/seed3/examples.h5")


def test_the_example_table_holds_each_examples_fate(record):
    table = example_table(record)
    assert list(table.columns) == [
        *KEYS, "example", "assigned_label", "original_label", "corrupted", "first_learned",
        "learned_for_good", "first_learned_presented", "forgetting_events",
        "never_learned_presented", "censored", "unforgettable", "fitted_epoch1",
    ]  # fmt: skip
    assert table[KEYS].iloc[0].to_dict() == dict(
        dataset="mnist5k", variant="corrupt0.5", p=0.5, model="mlp1x512", regularizer="none",
        seed=3,
    )  # fmt: skip
    # fitted (prediction == assigned label): [[1,0,0,1], [1,1,1,0], [1,1,1,1]]
    assert table.first_learned.tolist() == [1, 2, 2, 1]
    assert table.learned_for_good.tolist() == [1, 2, 2, 3]
    assert table.fitted_epoch1.tolist() == [True, False, False, True]
    # presentations: example 0 correct, wrong, correct (1 event); 3: correct then wrong twice
    assert table.first_learned_presented.tolist() == [1, 2, 2, 1]
    assert table.forgetting_events.tolist() == [1, 0, 0, 1]
    assert table.never_learned_presented.tolist() == [False, False, False, False]
    # learned at presentation 2 of 3 and never forgotten: unforgettable, not censored
    assert table.censored.tolist() == [False] * 4
    assert table.unforgettable.tolist() == [False, True, True, False]
    assert table.original_label.tolist() == ORIGINAL and table.corrupted.tolist() == CORRUPTED


@pytest.mark.parametrize(
    ("presentations", "first", "is_censored"),
    [(3, 3, True), (3, 2, False), (10, 10, True), (10, 9, False), (20, 19, True),
     (20, 18, False), (20, 0, False)],
)  # fmt: skip
def test_examples_first_learned_in_the_last_tenth_of_presentations_are_censored(
    presentations, first, is_censored
):
    """Learned too late to be forgotten: never called unforgettable (at least the last
    presentation; the last 2 of 20)."""
    assert censored(np.array([first]), presentations).tolist() == [is_censored]


def test_an_example_learned_at_the_last_presentation_is_censored_not_unforgettable(tmp_path):
    path = tmp_path / "d/corrupt0.5/m/none/seed0/examples.h5"
    write_record(path)
    with h5py.File(path, "r+") as f:  # example 1 right only at the last presentation
        presented = f["epochs/presented_correct"][()]
        presented[:, 1] = [0, 0, 1]
        f["epochs/presented_correct"][...] = presented
    table = example_table(path)
    assert table.first_learned_presented[1] == 3 and table.forgetting_events[1] == 0
    assert table.censored[1] and not table.unforgettable[1]


def test_an_example_correct_then_wrong_at_the_end_is_not_learned_for_good(tmp_path):
    predictions = [[0, 1, 2, 2], [0, 1, 2, 2], [0, 0, 2, 0]]  # examples 1 and 3 wrong at the end
    path = write_record(tmp_path / "d/true/m/none/seed0/examples.h5", predictions)
    table = example_table(path)
    assert table.first_learned.tolist() == [1, 1, 1, 1]
    assert table.learned_for_good.tolist() == [1, 0, 1, 0]


def test_the_epoch_table_counts_clean_and_corrupted_examples_fitted(record):
    table = epoch_table(record)
    assert list(table.columns) == [
        *KEYS, "epoch", "clean_fitted", "corrupted_fitted", "corrupted_as_original", "clean",
        "corrupted",
    ]  # fmt: skip
    assert table.epoch.tolist() == [1, 2, 3]
    assert table.clean_fitted.tolist() == [0.5, 1.0, 1.0]
    assert table.corrupted_fitted.tolist() == [0.5, 0.5, 1.0]
    # predicted as the original label (0 for example 2, 1 for example 3)
    assert table.corrupted_as_original.tolist() == [0.5, 0.5, 0.0]
    assert (table.clean == 2).all() and (table.corrupted == 2).all()


def test_the_critical_table_gives_each_sets_ratio_at_each_epoch_measured(record, tmp_path):
    table = critical_table(record)
    assert list(table.columns) == [*KEYS, *CRITICAL_COLUMNS]
    rows = table[["epoch", "set", "examined", "critical", "csr"]].to_dict("records")
    assert rows == [
        dict(epoch=1, set="test", examined=3, critical=2, csr=2 / 3),
        dict(epoch=3, set="test", examined=3, critical=1, csr=1 / 3),
        dict(epoch=1, set="train-clean", examined=1, critical=1, csr=1.0),
        dict(epoch=3, set="train-clean", examined=1, critical=0, csr=0.0),
        dict(epoch=1, set="train-corrupted", examined=1, critical=1, csr=1.0),
        dict(epoch=3, set="train-corrupted", examined=1, critical=1, csr=1.0),
    ]
    clean_only = write_record(
        tmp_path / "d/true/m/none/seed0/examples.h5",
        critical={**CRITICAL, "train": [[1], [0]], "train_index": [1]},
    )
    assert set(critical_table(clean_only).set) == {"test", "train-clean"}  # no empty set
    unmeasured = write_record(tmp_path / "d/true/m/none/seed1/examples.h5", critical=None)
    assert critical_table(unmeasured).empty
    assert list(critical_table(unmeasured).columns) == [*KEYS, *CRITICAL_COLUMNS]


def consistency_examples(first_learned: dict, fitted_epoch1: dict) -> pd.DataFrame:
    """An examples table of one (variant, model, regularizer) over the seeds given."""
    rows = [
        dict(dataset="d", variant="corrupt0.5", model="m", regularizer="none", seed=seed,
             example=i, corrupted=i >= 4, first_learned=first, fitted_epoch1=fitted)
        for seed, firsts in first_learned.items()
        for i, (first, fitted) in enumerate(zip(firsts, fitted_epoch1[seed], strict=True))
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_the_consistency_table_compares_seeds_as_arpit_et_al_do():
    first = {0: [1, 2, 3, 0, 2, 4], 1: [1, 3, 2, 4, 0, 4], 2: [2, 1, 3, 4, 3, 1]}
    fitted = {
        0: [1, 0, 0, 0, 0, 1], 1: [1, 1, 0, 0, 0, 0], 2: [0, 1, 0, 0, 1, 0],
    }  # fmt: skip
    examples = consistency_examples(first, fitted)
    lone = consistency_examples({5: first[0]}, {5: fitted[0]}).assign(model="other")
    table = consistency_table(pd.concat([examples, lone], ignore_index=True))
    assert list(table.columns) == ["dataset", "variant", "model", "regularizer",
                                   *CONSISTENCY_COLUMNS]  # fmt: skip
    assert table.model.tolist() == ["m", "m"]  # a single seed has nothing to agree with
    for group, members in (("clean", slice(0, 4)), ("corrupted", slice(4, 6))):
        row = table[table.examples == group].iloc[0]
        ranks = {
            s: np.where(np.array(v[members]) == 0, np.inf, v[members]) for s, v in first.items()
        }
        pairs = [(0, 1), (0, 2), (1, 2)]
        expected = np.mean([spearmanr(ranks[a], ranks[b]).statistic for a, b in pairs])
        wrong = ~np.array([fitted[s][members] for s in (0, 1, 2)], bool)  # seeds x examples
        error = wrong.mean()
        assert (row.seeds, row.n) == (3, wrong.shape[1])
        assert row.spearman_first_learned == pytest.approx(expected)
        assert row.error_epoch1 == pytest.approx(error)
        assert row.always_wrong == pytest.approx(wrong.all(axis=0).mean())
        assert row.always_right == pytest.approx((~wrong).all(axis=0).mean())
        assert row.always_wrong_binomial == pytest.approx(error**3)
        assert row.always_right_binomial == pytest.approx((1 - error) ** 3)


def test_the_tables_are_written_whole_and_read_back_by_pandas(tmp_path):
    runs = tmp_path / "runs/d/corrupt0.5/mlp1x512/none"
    records = [str(write_record(runs / f"seed{seed}/examples.h5")) for seed in (0, 1)]
    out = {name: tmp_path / f"{name}.csv" for name in ("examples", "epochs", "critical",
                                                       "consistency")}  # fmt: skip
    out["consistency_md"] = tmp_path / "consistency.md"
    write_memorization_tables(records, out)
    examples = pd.read_csv(out["examples"])
    assert len(examples) == 2 * 4 and examples.seed.tolist() == [0] * 4 + [1] * 4
    pd.testing.assert_frame_equal(
        examples, pd.concat([example_table(r) for r in records], ignore_index=True),
        check_dtype=False,
    )  # fmt: skip
    assert len(pd.read_csv(out["epochs"])) == 2 * 3 and len(pd.read_csv(out["critical"])) == 12
    consistency = pd.read_csv(out["consistency"])
    assert consistency.examples.tolist() == ["clean", "corrupted"]
    assert consistency.spearman_first_learned.tolist() == pytest.approx([1, 1])  # same seeds
    header = out["consistency_md"].read_text().splitlines()[0]
    assert header.split("|")[1].strip() == "dataset"  # no index column
    assert " 1.000 |" in out["consistency_md"].read_text()  # three decimals
