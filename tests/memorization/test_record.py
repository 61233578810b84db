"""The per-example record of a run and the measures derived from it (Toneva et al. 2019)."""

import itertools

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from rethink.data.h5io import read_dataset, write_dataset
from rethink.data.variants import make_variant
from rethink.memorization import EXAMPLES_FILE
from rethink.memorization.figures import MemorizationTables
from rethink.memorization.record import ExampleRecord, margins
from rethink.memorization.tables import (
    consistency_table,
    example_table,
    first_learned,
    forgetting_events,
    learned_for_good,
    write_memorization_tables,
)
from rethink.results.aggregate import collect_curves, collect_runs
from rethink.results.catalog import figures_reading
from rethink.results.figures import figure_paths, write_catalog_figure
from rethink.training.loop import train_run
from rethink.training.settings import RunConfig

# epochs x examples: each column a hand-made history of one example
CORRECT = np.array(
    [
        # a  b  c  d  e
        [0, 1, 0, 0, 1],
        [1, 0, 0, 1, 1],
        [1, 1, 0, 0, 1],
        [1, 1, 0, 1, 1],
    ],
    bool,
)


def test_first_learned_is_the_first_correct_epoch_and_0_for_never():
    assert first_learned(CORRECT).tolist() == [2, 1, 0, 2, 1]


def test_learned_for_good_is_where_the_last_run_of_correct_epochs_starts():
    assert learned_for_good(CORRECT).tolist() == [2, 3, 0, 4, 1]
    assert learned_for_good(~CORRECT).tolist() == [0, 0, 1, 0, 0]


def test_forgetting_events_count_correct_then_wrong():
    assert forgetting_events(CORRECT).tolist() == [0, 1, 0, 1, 0]
    assert forgetting_events(np.array([[1], [0], [1], [0], [0]], bool)).tolist() == [2]


def test_the_margin_is_the_own_logit_minus_the_largest_other():
    logits = torch.tensor([[2.0, 5.0, 1.0], [2.0, 5.0, 1.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([1, 0, 2])
    assert margins(logits, labels).tolist() == [3.0, -3.0, 0.0]


@pytest.mark.parametrize(
    ("top_class", "dtype"), [(255, np.uint8), (256, np.int16), (999, np.int16)]
)
def test_predictions_are_stored_in_one_byte_only_while_every_class_fits(top_class, dtype, tmp_path):
    record = ExampleRecord()
    predictions = torch.tensor([0, 7, top_class])
    record.add_epoch(predictions, torch.zeros(3), torch.zeros(3), torch.ones(3, dtype=torch.bool))
    record.write(tmp_path / EXAMPLES_FILE, [0, 7, top_class], [0, 7, 1], [False, False, True])
    with h5py.File(tmp_path / EXAMPLES_FILE) as f:
        assert f["epochs/predictions"].dtype == dtype
        assert f["epochs/predictions"][0].tolist() == [0, 7, top_class]
        assert f["corrupted"].dtype == bool and f["corrupted"][()].tolist() == [False, False, True]


@pytest.fixture(scope="module")
def corrupted_variant(mnist5k, tmp_path_factory):
    path = tmp_path_factory.mktemp("variants") / "corrupt0.4.h5"
    write_dataset(path, make_variant(mnist5k, "corrupt0.4", seed=0))
    return path


RECORDED = dict(
    model="mlp1x512", train_subset=600, test_subset=200, max_epochs=6, checkpoint_every=2,
    regularizer="dropout", device="cpu", record_examples=True, critical_examples=20,
    critical_iterations=20,
)  # fmt: skip


def read_record(run_dir) -> dict:
    with h5py.File(run_dir / EXAMPLES_FILE) as f:
        return {name: f[name][()] for name in _names(f)}


def _names(f: h5py.File) -> list[str]:
    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(names)


@pytest.fixture(scope="module")
def recorded(corrupted_variant, source_dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("recorded")
    train_run(corrupted_variant, run_dir, RunConfig(**RECORDED), source_dataset)
    return run_dir


def test_the_record_holds_every_example_at_every_epoch_from_the_accuracy_pass(
    recorded, corrupted_variant, source_dataset
):
    record = read_record(recorded)
    history = pd.read_csv(recorded / "history.csv")
    epochs, n = len(history), RECORDED["train_subset"]
    for name in ("predictions", "losses", "margins", "presented_correct"):
        assert record[f"epochs/{name}"].shape == (epochs, n)
    assert record["epochs/predictions"].dtype == np.uint8
    assert record["epochs/losses"].dtype == record["epochs/margins"].dtype == np.float16
    assigned = read_dataset(corrupted_variant).train.labels[:n]
    original = read_dataset(source_dataset).train.labels[:n]
    np.testing.assert_array_equal(record["assigned_label"], assigned)
    np.testing.assert_array_equal(record["original_label"], original)
    np.testing.assert_array_equal(record["corrupted"], assigned != original)
    assert 0.3 < record["corrupted"].mean() < 0.42  # p = 0.4: 0.9 p expected
    # The same eval-mode pass as the history's training accuracy and loss
    fitted = record["epochs/predictions"] == assigned
    np.testing.assert_allclose(fitted.mean(axis=1), history.train_acc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        record["epochs/losses"].astype(np.float64).mean(axis=1), history.train_loss, rtol=2e-3
    )
    # A positive margin means fitted; a fitted example has margin > 0, or 0 where bf16 logits
    # tie and argmax takes the assigned class, the lower index (rare).
    margins = record["epochs/margins"]
    assert (fitted[margins > 0]).all() and (margins[fitted] >= 0).all()
    assert (fitted & (margins == 0)).mean() < 0.005
    # Presentations are taken in train mode (dropout on), before each update: close to the
    # eval pass of the epoch before, but their own numbers.
    presented = record["epochs/presented_correct"].mean(axis=1)
    assert presented[-1] > 0.3 and not np.array_equal(presented, fitted.mean(axis=1))


def test_a_run_without_the_record_does_no_per_example_work_and_writes_no_file(
    corrupted_variant, tmp_path, monkeypatch
):
    def never(*args, **kwargs):
        raise AssertionError("per-example work in a run that records nothing")

    monkeypatch.setattr(ExampleRecord, "add_epoch", never)
    monkeypatch.setattr("rethink.observers.examples.critical_samples", never)
    monkeypatch.setattr("rethink.observers.examples.example_labels", never)
    config = RunConfig(**(RECORDED | {"record_examples": False, "critical_examples": 0}))
    train_run(corrupted_variant, tmp_path, config)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "history.csv", "steps.csv", "summary.json", "weights.safetensors"
    ]  # fmt: skip


def test_the_same_seed_gives_the_same_record_bytes(
    recorded, corrupted_variant, source_dataset, tmp_path
):
    train_run(corrupted_variant, tmp_path, RunConfig(**RECORDED), source_dataset)
    assert (tmp_path / EXAMPLES_FILE).read_bytes() == (recorded / EXAMPLES_FILE).read_bytes()


def test_an_interrupted_run_resumes_to_the_same_record(
    recorded, corrupted_variant, source_dataset, tmp_path, monkeypatch
):
    from tests.training.test_loop import Interrupted, interrupt_after

    with monkeypatch.context() as patch:
        interrupt_after(patch, 3)  # the checkpoint is from epoch 2
        with pytest.raises(Interrupted):
            train_run(corrupted_variant, tmp_path, RunConfig(**RECORDED), source_dataset)
    train_run(corrupted_variant, tmp_path, RunConfig(**RECORDED), source_dataset)
    assert (tmp_path / EXAMPLES_FILE).read_bytes() == (recorded / EXAMPLES_FILE).read_bytes()


def test_random_signs_count_every_example_as_corrupted(mnist5k, source_dataset, tmp_path):
    variant = tmp_path / "rademacher1.h5"
    write_dataset(variant, make_variant(mnist5k, "rademacher1", seed=0))
    config = RunConfig(**(RECORDED | {"max_epochs": 1}))
    train_run(variant, tmp_path / "run", config, source_dataset)
    record = read_record(tmp_path / "run")
    assert record["corrupted"].all() and set(record["assigned_label"]) == {0, 1}


@pytest.fixture(scope="module")
def study_runs(corrupted_variant, source_dataset, tmp_path_factory):
    """Recorded runs in the workflow's run directories: two seeds under dropout, one without."""
    root = tmp_path_factory.mktemp("study") / "results/runs/mnist5k/corrupt0.4/mlp1x512"
    dirs = [root / "dropout/seed0", root / "dropout/seed1", root / "none/seed0"]
    for run_dir in dirs:
        seed, regularizer = int(run_dir.name[-1]), run_dir.parent.name
        config = RunConfig(**(RECORDED | {"seed": seed, "regularizer": regularizer}))
        train_run(corrupted_variant, run_dir, config, source_dataset)
    return dirs


@pytest.fixture(scope="module")
def two_seeds(study_runs):
    """The examples.h5 of the two dropout seeds."""
    return [run_dir / EXAMPLES_FILE for run_dir in study_runs[:2]]


@pytest.fixture(scope="module")
def table_paths(study_runs, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("tables")
    names = ("examples", "epochs", "critical", "consistency")
    out = {name: out_dir / f"{name}.csv" for name in names}
    out["consistency_md"] = out_dir / "consistency.md"
    write_memorization_tables([str(d / EXAMPLES_FILE) for d in study_runs], out)
    return out


@pytest.fixture(scope="module")
def tables(table_paths):
    """The tables of the dropout runs."""
    tables = {name: pd.read_csv(p) for name, p in table_paths.items() if name != "consistency_md"}
    return {name: t[t.regularizer == "dropout"] for name, t in tables.items()}


def test_the_example_table_recomputes_from_the_raw_record(tables, two_seeds):
    examples = tables["examples"]
    assert len(examples) == 2 * RECORDED["train_subset"]
    seed1 = examples[examples.seed == 1].reset_index(drop=True)
    assert (seed1[["dataset", "variant", "model", "regularizer"]].iloc[0].tolist()
            == ["mnist5k", "corrupt0.4", "mlp1x512", "dropout"])  # fmt: skip
    record = read_record(two_seeds[1].parent)
    fitted = record["epochs/predictions"] == record["assigned_label"]
    for i in (0, 17, 599):  # single examples, by hand
        correct = fitted[:, i]
        first = int(np.argmax(correct)) + 1 if correct.any() else 0
        assert seed1.first_learned[i] == first
        presented = record["epochs/presented_correct"][:, i]
        flips = sum(a and not b for a, b in itertools.pairwise(presented))
        assert seed1.forgetting_events[i] == flips
        assert seed1.never_learned_presented[i] == (not presented.any())
        assert seed1.first_learned_presented[i] == (
            int(np.argmax(presented)) + 1 if presented.any() else 0
        )
        assert seed1.fitted_epoch1[i] == correct[0]


def test_the_epoch_table_recomputes_from_the_raw_record(tables, two_seeds):
    epochs = tables["epochs"][lambda t: t.seed == 0].reset_index(drop=True)
    record = read_record(two_seeds[0].parent)
    predictions, corrupted = record["epochs/predictions"], record["corrupted"]
    fitted = predictions == record["assigned_label"]
    np.testing.assert_allclose(epochs.clean_fitted, fitted[:, ~corrupted].mean(axis=1))
    np.testing.assert_allclose(epochs.corrupted_fitted, fitted[:, corrupted].mean(axis=1))
    as_original = predictions[:, corrupted] == record["original_label"][corrupted]
    np.testing.assert_allclose(epochs.corrupted_as_original, as_original.mean(axis=1))
    assert epochs.clean[0] + epochs.corrupted[0] == RECORDED["train_subset"]
    # Real patterns first: clean examples are fitted sooner than corrupted ones.
    assert (epochs.clean_fitted > epochs.corrupted_fitted).all()


def test_consistency_compares_seeds_with_equally_hard_examples(tables):
    consistency = tables["consistency"]
    assert consistency.examples.tolist() == ["clean", "corrupted"]
    assert (consistency.seeds == 2).all()
    assert consistency.spearman_first_learned.between(-1, 1).all()
    np.testing.assert_allclose(consistency.always_wrong_binomial, consistency.error_epoch1**2)
    np.testing.assert_allclose(
        consistency.always_right_binomial, (1 - consistency.error_epoch1) ** 2
    )


def test_one_seed_gives_an_empty_consistency_table(two_seeds, tmp_path):
    examples = example_table(two_seeds[0])
    assert consistency_table(examples).empty


def test_critical_samples_are_measured_at_powers_of_two_and_the_last_epoch(recorded):
    record = read_record(recorded)
    assert record["critical/epochs"].tolist() == [1, 2, 4, 6]  # 6 epochs, not fitted
    assert record["critical/test"].shape == record["critical/train"].shape == (4, 20)
    assert record["critical/test_index"].tolist() == list(range(20))
    # half clean, half corrupted training images
    assert record["corrupted"][record["critical/train_index"]].sum() == 10


def test_the_probes_leave_the_training_as_it_was(corrupted_variant, source_dataset, tmp_path):
    plain = RunConfig(**(RECORDED | {"critical_examples": 0}))
    train_run(corrupted_variant, tmp_path / "plain", plain, source_dataset)
    probed = RunConfig(**RECORDED)
    train_run(corrupted_variant, tmp_path / "probed", probed, source_dataset)
    histories = [pd.read_csv(tmp_path / n / "history.csv").drop(columns="seconds")
                 for n in ("plain", "probed")]  # fmt: skip
    pd.testing.assert_frame_equal(*histories)
    with h5py.File(tmp_path / "plain" / EXAMPLES_FILE) as f:
        assert "critical" not in f


def test_the_critical_table_splits_clean_and_corrupted_training_images(tables, two_seeds):
    critical = tables["critical"][lambda t: t.seed == 0]
    record = read_record(two_seeds[0].parent)
    assert sorted(critical.set.unique()) == ["test", "train-clean", "train-corrupted"]
    assert (critical.groupby("set").examined.first() == [20, 10, 10]).all()
    test = critical[critical.set == "test"].set_index("epoch").csr
    np.testing.assert_allclose(test.to_numpy(), record["critical/test"].mean(axis=1))


@pytest.mark.parametrize("figure", figures_reading("memorization"))
def test_each_memorization_figure_is_drawn_with_its_data(figure, study_runs, table_paths, tmp_path):
    summaries = [str(d / "summary.json") for d in study_runs]
    histories = [str(d / "history.csv") for d in study_runs]
    runs, curves = tmp_path / "runs.csv", tmp_path / "histories.csv"
    collect_runs(summaries).to_csv(runs, index=False)
    collect_curves(histories).to_csv(curves, index=False)
    tables = MemorizationTables.read(
        "mnist5k", runs=runs, histories=curves, epochs=table_paths["epochs"],
        examples=table_paths["examples"], critical=table_paths["critical"],
    )  # fmt: skip
    out = figure_paths(tmp_path / "figures", "mnist5k", figure)
    write_catalog_figure(figure, tables, "mnist5k", out, dpi=50)
    assert out["png"].stat().st_size > 5000 and out["pdf"].exists()
    data = pd.read_csv(out["csv"])
    assert len(data) > 0 and set(data.model) == {"mlp1x512"}
    if figure == "regularizers-vs-memorization":
        assert sorted(data.regularizer) == ["dropout", "dropout", "none"]
    if figure == "memorization-order":
        assert set(data.measure) == {
            "clean examples fitted", "corrupted examples fitted", "test accuracy"
        }  # fmt: skip
