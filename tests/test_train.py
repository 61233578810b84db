import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from rethink.h5io import write_dataset
from rethink.train import HISTORY_COLUMNS, RunConfig, make_model, make_optimizer, train_run
from rethink.variants import make_variant


@pytest.fixture(scope="module")
def variants(mnist5k, tmp_path_factory):
    """The true and random-label variants of mnist5k, as files."""
    root = tmp_path_factory.mktemp("variants")
    paths = {}
    for name in ("true", "random"):
        paths[name] = root / f"{name}.h5"
        write_dataset(paths[name], make_variant(mnist5k, name, seed=0))
    return paths


def history_without_time(run_dir):
    return pd.read_csv(run_dir / "history.csv").drop(columns="seconds")


# The default study's protocol for mnist5k (config.yaml): the paper's decay per step.
MNIST5K = dict(lr_decay=0.9958, max_epochs=300)


@pytest.mark.slow
def test_mlp_fits_true_labels_and_generalizes(variants, tmp_path):
    summary = train_run(variants["true"], tmp_path, RunConfig("mlp1x512", **MNIST5K))
    assert summary["fitted"] and summary["train_acc"] == 1.0
    assert summary["test_acc"] >= 0.90
    assert summary["steps_to_fit"] == summary["steps"]


@pytest.mark.slow
def test_mlp_fits_random_labels_at_chance_test_accuracy(variants, tmp_path):
    summary = train_run(variants["random"], tmp_path, RunConfig("mlp1x512", **MNIST5K))
    assert summary["fitted"] and summary["train_acc"] == 1.0
    assert summary["test_acc"] <= 0.15


def test_outputs_record_what_the_figures_need(variants, tmp_path):
    config = RunConfig("mlp1x512", train_subset=500, max_epochs=3, loss_block_steps=2)
    summary = train_run(variants["true"], tmp_path, config)
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert history.epoch.tolist() == [1, 2, 3] and history.step.tolist() == [4, 8, 12]
    assert history.lr.tolist() == pytest.approx([0.01, 0.0095, 0.009025])  # x0.95 per epoch
    for column in ("train_acc", "test_acc"):
        assert history[column].between(0, 1).all()
    steps = pd.read_csv(tmp_path / "steps.csv")
    assert steps.step.tolist() == [2, 4, 6, 8, 10, 12]
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    assert set(summary) >= {
        "train_acc", "test_acc", "best_test_acc", "fitted", "steps_to_fit", "epochs", "seconds",
        "params", "device", "torch", "config_hash",
    }  # fmt: skip
    assert summary["params"] == 407_050  # mlp1x512 on 28x28x1
    assert summary["best_test_acc"] == history.test_acc.max()
    assert summary["device"] == "cpu"
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_run_that_never_fits_says_so(variants, tmp_path):
    summary = train_run(variants["random"], tmp_path, RunConfig("mlp1x512", max_epochs=1))
    assert summary["fitted"] is False and summary["steps_to_fit"] is None
    assert summary["train_acc"] < 1


@pytest.mark.parametrize(
    ("model", "regularizer"),
    [("mlp1x512", "none"), ("mlp1x512", "augment+dropout"), ("alexnet", "crop+wd")],
)
def test_same_seed_same_history_on_cpu(variants, tmp_path, model, regularizer):
    config = dict(train_subset=300, max_epochs=2, regularizer=regularizer, eval_batch_size=500)
    for run in ("a", "b"):
        train_run(variants["random"], tmp_path / run, RunConfig(model, **config))
    a, b = (pd.read_csv(tmp_path / run / "history.csv") for run in "ab")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    train_run(variants["random"], tmp_path / "c", RunConfig(model, seed=1, **config))
    assert not history_without_time(tmp_path / "c").equals(history_without_time(tmp_path / "a"))


@pytest.mark.parametrize(
    ("regularizer", "wd", "dropout"),
    [("none", 0.0, 0.0), ("wd", 1e-3, 0.0), ("dropout", 0.0, 0.3), ("crop+wd+dropout", 1e-3, 0.3)],
)
def test_regularizers_switch_weight_decay_and_dropout(regularizer, wd, dropout):
    config = RunConfig("mlp3x512", regularizer=regularizer, weight_decay=1e-3, dropout=0.3)
    model = make_model(config, (1, 28, 28), 10, torch.device("cpu"))
    optimizer = make_optimizer(config, model)
    assert optimizer.defaults["weight_decay"] == wd
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["lr"] == 0.01
    rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == ({dropout} if dropout else set())


def test_config_hash_ignores_how_a_run_executes():
    base = RunConfig("inception")
    assert base.lr == 0.1 and RunConfig("alexnet").lr == 0.01
    assert RunConfig("inception", threads=8, device="cpu").config_hash() == base.config_hash()
    assert RunConfig("inception", lr=0.05).config_hash() != base.config_hash()


RESUMABLE = """
import logging, sys
from rethink.train import RunConfig, train_run
logging.basicConfig(level=logging.INFO)
config = RunConfig("mlp1x512", train_subset=1000, max_epochs=40, checkpoint_every=2)
train_run(sys.argv[1], sys.argv[2], config)
"""


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_with_the_same_history(variants, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    command = [sys.executable, "-c", RESUMABLE, str(variants["random"])]
    subprocess.run([*command, str(whole)], check=True, capture_output=True)

    process = subprocess.Popen([*command, str(killed)], stderr=subprocess.DEVNULL)
    checkpoint = killed / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let it get past the first checkpoint
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not (killed / "summary.json").exists()

    resumed = subprocess.run([*command, str(killed)], check=True, capture_output=True, text=True)
    assert "resuming after epoch" in resumed.stderr
    pd.testing.assert_frame_equal(history_without_time(killed), history_without_time(whole))
    assert (killed / "steps.csv").read_text() == (whole / "steps.csv").read_text()
    assert not checkpoint.exists()  # removed once the run completed
