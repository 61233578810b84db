"""TensorBoard logging, read back with tensorboard's own reader: every epoch's losses,
accuracies and learning rate as the history has them, once each after a resume, nothing when
off, and a missing package refused before any job."""

import importlib.util

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rethink.config import ConfigError, check_config, load_study
from rethink.observers.tensorboard import FOLDER
from rethink.training.loop import train_run
from rethink.training.settings import RunConfig
from tests.conftest import REPO
from tests.training.test_loop import Interrupted, interrupt_after

LOGGED = dict(
    model="mlp1x512", train_subset=512, test_subset=256, max_epochs=6, checkpoint_every=2,
    device="cpu", tensorboard=True,
)  # fmt: skip
COLUMNS = {  # tag -> history.csv column
    "loss/train": "train_loss", "loss/test": "test_loss", "accuracy/train": "train_acc",
    "accuracy/test": "test_acc", "top5/train": "train_top5", "top5/test": "test_top5",
    "lr": "lr",
}  # fmt: skip


def events(run_dir) -> dict[str, list[tuple[int, float]]]:
    reader = EventAccumulator(str(run_dir / FOLDER))
    reader.Reload()
    return {
        tag: [(event.step, event.value) for event in reader.Scalars(tag)]
        for tag in reader.Tags()["scalars"]
    }


def assert_events_are_the_history(run_dir) -> None:
    history = pd.read_csv(run_dir / "history.csv")
    logged = events(run_dir)
    assert set(logged) == set(COLUMNS)
    for tag, column in COLUMNS.items():
        steps, values = zip(*logged[tag], strict=True)
        assert list(steps) == history.epoch.tolist()  # each epoch once, in order
        assert values == pytest.approx(history[column].tolist(), rel=1e-6)  # float32 events


def test_every_epoch_is_logged_as_the_history_has_it(variants, tmp_path):
    train_run(variants["true"], tmp_path, RunConfig(**LOGGED))
    assert_events_are_the_history(tmp_path)
    assert len(pd.read_csv(tmp_path / "history.csv")) == 6


def test_a_resumed_run_logs_each_epoch_once(variants, tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        interrupt_after(patch, 5)  # events up to epoch 5, the checkpoint from epoch 4
        with pytest.raises(Interrupted):
            train_run(variants["true"], tmp_path, RunConfig(**LOGGED))
    assert [step for step, _ in events(tmp_path)["lr"]] == [1, 2, 3, 4, 5]
    train_run(variants["true"], tmp_path, RunConfig(**LOGGED))
    assert_events_are_the_history(tmp_path)


def test_a_run_without_it_writes_no_events_and_its_numbers_do_not_change(variants, tmp_path):
    train_run(variants["true"], tmp_path / "off", RunConfig(**(LOGGED | {"tensorboard": False})))
    train_run(variants["true"], tmp_path / "on", RunConfig(**LOGGED))
    assert not (tmp_path / "off" / FOLDER).exists()
    off, on = (pd.read_csv(tmp_path / run / "history.csv") for run in ("off", "on"))
    pd.testing.assert_frame_equal(off.drop(columns="seconds"), on.drop(columns="seconds"))


def test_without_the_package_the_config_check_says_how_to_install_it(monkeypatch):
    config = load_study(REPO / "config.yaml")
    config["logging"] = {"tensorboard": True}
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real(name, *a),
    )
    with pytest.raises(ConfigError, match=r"logging.tensorboard': needs the tensorboard package"):
        check_config(config)
