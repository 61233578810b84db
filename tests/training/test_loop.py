import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from rethink.data.h5io import read_dataset, write_dataset
from rethink.training.batches import load_data
from rethink.training.loop import Objective, make_model, train_run
from rethink.training.optimizers import make_optimizer
from rethink.training.outputs import HISTORY_COLUMNS
from rethink.training.run_lock import WORKFLOW_PID_VARIABLE
from rethink.training.settings import RunConfig


def history_without_time(run_dir):
    return pd.read_csv(run_dir / "history.csv").drop(columns="seconds")


# These tests assert CPU behaviour (exact histories, summary["device"]): they pin the CPU, so
# that they also pass on a machine with a GPU, where `device: auto` would pick CUDA.
CPU = dict(device="cpu")
# The default study's protocol for mnist5k (config.yaml): the paper's decay per 391 steps.
MNIST5K = dict(max_epochs=300, **CPU)


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
    config = RunConfig(
        "mlp1x512", train_subset=500, max_epochs=3, loss_block_steps=2, lr_decay_steps=4, **CPU
    )
    tmp_path = tmp_path / "runs" / "seed0"  # made as needed
    summary = train_run(variants["true"], tmp_path, config)
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert history.epoch.tolist() == [1, 2, 3] and history.step.tolist() == [4, 8, 12]
    assert history.lr.tolist() == pytest.approx([0.01, 0.0095, 0.009025])  # x0.95 per 4 steps
    for column in ("train_acc", "test_acc"):
        assert history[column].between(0, 1).all()
    steps = pd.read_csv(tmp_path / "steps.csv")
    assert list(steps.columns) == ["step", "train_loss"]
    assert steps.step.tolist() == [2, 4, 6, 8, 10, 12] and steps.train_loss.between(0, 10).all()
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    assert set(summary) >= {
        "train_acc", "test_acc", "best_test_acc", "fitted", "steps_to_fit", "epochs", "seconds",
        "params", "device", "torch", "config_hash", "steps", "cuda_visible_devices", "config",
    }  # fmt: skip
    assert summary["config"] == dataclasses.asdict(config)
    assert summary["params"] == 407_050  # mlp1x512 on 28x28x1
    assert summary["best_test_acc"] == history.test_acc.max()
    assert summary["device"] == "cpu"
    assert not (tmp_path / "checkpoint.pt").exists()


def test_the_rate_decays_every_lr_decay_steps_steps_within_and_across_epochs(
    variants, tmp_path, monkeypatch
):
    """The paper's 0.95 per 391 steps is a rule per step: at 4 steps an epoch and a decay every
    3 steps, the rate changes inside the first epoch and again inside the second."""
    rates = []
    step = torch.optim.SGD.step
    monkeypatch.setattr(
        torch.optim.SGD,
        "step",
        lambda self, *a: rates.append(self.param_groups[0]["lr"]) or step(self, *a),
    )
    config = RunConfig(
        "mlp1x512", train_subset=500, max_epochs=2, lr=0.1, lr_decay=0.5, lr_decay_steps=3, **CPU
    )
    train_run(variants["true"], tmp_path, config)
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])
    assert pd.read_csv(tmp_path / "history.csv").lr.tolist() == pytest.approx([0.1, 0.05])
    # On CIFAR-10 (391 steps an epoch) the rule is the paper's: 0.95 after every epoch.
    paper = RunConfig("alexnet")
    assert [paper.lr_at(391 * epoch + 390, 50_000) for epoch in range(3)] == pytest.approx(
        [0.01, 0.0095, 0.009025]
    )


def test_a_run_that_never_fits_says_so(variants, tmp_path):
    summary = train_run(variants["random"], tmp_path, RunConfig("mlp1x512", max_epochs=1, **CPU))
    assert summary["fitted"] is False and summary["steps_to_fit"] is None
    assert summary["train_acc"] < 1


@pytest.mark.parametrize(
    ("model", "regularizer"),
    [
        ("mlp1x512", "none"),
        ("mlp1x512", "augment+dropout"),
        pytest.param("alexnet", "crop+wd", marks=pytest.mark.slow),  # 9 s
    ],
)
def test_same_seed_same_history_on_cpu(variants, tmp_path, model, regularizer):
    config = dict(
        train_subset=300, max_epochs=2, regularizer=regularizer, eval_batch_size=500, **CPU
    )
    for run in ("a", "b"):
        train_run(variants["random"], tmp_path / run, RunConfig(model, **config))
    a, b = (pd.read_csv(tmp_path / run / "history.csv") for run in "ab")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    train_run(variants["random"], tmp_path / "c", RunConfig(model, seed=1, **config))
    assert not history_without_time(tmp_path / "c").equals(history_without_time(tmp_path / "a"))


@pytest.mark.parametrize(
    ("regularizer", "wd", "dropout"),
    [
        ("none", 0.0, 0.0), ("wd", 1e-3, 0.0), ("dropout", 0.0, 0.3),
        ("crop+wd+dropout", 1e-3, 0.3),
        # a strength in the name wins over the configured one (Arpit et al.'s sweeps)
        ("wd1e-4", 1e-4, 0.0), ("crop+dropout0.25", 0.0, 0.25), ("wd2e-3+dropout0.1", 2e-3, 0.1),
    ],
)  # fmt: skip
def test_regularizers_switch_weight_decay_and_dropout(regularizer, wd, dropout):
    config = RunConfig("mlp3x512", regularizer=regularizer, weight_decay=1e-3, dropout=0.3)
    model = make_model(config, (1, 28, 28), 10, torch.device("cpu"))
    optimizer = make_optimizer(config, model)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [wd]
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
from rethink.training.loop import train_run
from rethink.training.settings import RunConfig
logging.basicConfig(level=logging.INFO)
config = RunConfig(
    "mlp1x512", train_subset=1000, max_epochs=40, checkpoint_every=2, device="cpu",
    record_examples=True, lr_decay_steps=8,
)
train_run(sys.argv[1], sys.argv[3], config, source_path=sys.argv[2])
"""


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_with_the_same_history(
    variants, source_dataset, tmp_path
):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    command = [sys.executable, "-c", RESUMABLE, str(variants["random"]), str(source_dataset)]
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
    history = history_without_time(killed)
    pd.testing.assert_frame_equal(history, history_without_time(whole))
    assert (killed / "steps.csv").read_text() == (whole / "steps.csv").read_text()
    # and the same per-example record, byte for byte
    assert (killed / "examples.h5").read_bytes() == (whole / "examples.h5").read_bytes()
    # and the weights: the initial ones drawn again from the seed, the final ones resumed
    for name in ("examples.h5", "weights.safetensors"):
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name
    assert not checkpoint.exists()  # removed once the run completed
    # Anchors independent of both runs, so that a bug they share cannot pass: 40 epochs of 8
    # steps (1,000 images, batch 128) at 0.01 x 0.95^(epoch - 1), learning all along.
    assert history.epoch.tolist() == list(range(1, 41))
    assert history.step.tolist() == [8 * e for e in range(1, 41)]
    assert history.lr.tolist() == pytest.approx([0.01 * 0.95**e for e in range(40)])
    assert history.train_acc.iloc[0] < 0.3 and history.train_acc.iloc[-1] > 0.6


def test_a_run_stops_at_the_first_epoch_at_which_it_fits(variants, tmp_path):
    """steps_to_fit is the step count when the training set is first classified correctly
    (Fig. 1b): the epoch before has training accuracy below 1, and no epoch follows."""
    config = RunConfig("mlp1x512", train_subset=256, lr=0.05, lr_decay=1.0, max_epochs=50, **CPU)
    started = time.perf_counter()
    summary = train_run(variants["true"], tmp_path, config)
    elapsed = time.perf_counter() - started
    history = pd.read_csv(tmp_path / "history.csv")
    assert 0 < history.seconds.iloc[0] < summary["seconds"] == history.seconds.iloc[-1] < elapsed
    assert summary["fitted"] and history.train_acc.iloc[-1] == 1.0
    assert (history.train_acc.iloc[:-1] < 1.0).all() and len(history) >= 3
    assert summary["epochs"] == len(history) == history.epoch.iloc[-1]
    assert summary["steps_to_fit"] == summary["steps"] == 2 * len(history)  # 256 / 128 a epoch


def test_a_fixed_budget_trains_every_epoch_and_records_when_it_first_fitted(variants, tmp_path):
    """stop_when_fitted: false (Toneva et al.'s regime) trains all max_epochs; steps_to_fit is
    the step count at the first epoch that fitted, as when the run stops there."""
    settings = dict(train_subset=256, lr=0.05, lr_decay=1.0, max_epochs=50, **CPU)
    stopped = train_run(variants["true"], tmp_path / "stop", RunConfig("mlp1x512", **settings))
    config = RunConfig("mlp1x512", stop_when_fitted=False, **settings | {"max_epochs": 25})
    budget = train_run(variants["true"], tmp_path / "budget", config)
    history = pd.read_csv(tmp_path / "budget" / "history.csv")
    assert budget["epochs"] == len(history) == 25 > stopped["epochs"]
    assert budget["steps_to_fit"] == stopped["steps_to_fit"]  # same seed, same first fit
    assert budget["fitted"] == (history.train_acc.iloc[-1] == 1.0)


def test_a_diverging_run_stops_and_still_writes_its_outputs(variants, tmp_path, caplog):
    config = RunConfig("mlp1x512", lr=1e6, train_subset=256, max_epochs=20, **CPU)
    summary = train_run(variants["true"], tmp_path, config)
    assert "training loss diverged at epoch" in caplog.text
    assert not summary["fitted"] and summary["epochs"] < 20
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_subsets_are_the_first_images_of_each_split(variants):
    config = RunConfig("mlp1x512", train_subset=300, test_subset=200)
    data = load_data(variants["random"], config, torch.device("cpu"))
    stored = read_dataset(variants["random"])
    assert len(data.train_inputs) == len(data.train_labels) == len(data.train_images) == 300
    assert len(data.test_inputs) == len(data.test_labels) == 200
    np.testing.assert_array_equal(data.train_labels.numpy(), stored.train.labels[:300])
    np.testing.assert_array_equal(data.test_labels.numpy(), stored.test.labels[:200])


@pytest.mark.parametrize("regularizer", ["crop", "augment", "dropout", "wd"])
def test_each_regularizer_changes_the_training(variants, tmp_path, regularizer):
    """Against a run without it, same seed: the regularizer is applied."""
    config = dict(train_subset=256, test_subset=256, max_epochs=2, **CPU)
    for name in ("none", regularizer):
        run = RunConfig("mlp1x512", regularizer=name, **config)
        train_run(variants["true"], tmp_path / name, run)
    plain, regularized = (history_without_time(tmp_path / name) for name in ("none", regularizer))
    assert (plain.train_loss != regularized.train_loss).all()


class Interrupted(Exception):
    pass


def interrupt_after(monkeypatch, epochs: int):
    """Make the next run stop with Interrupted once `epochs` epochs have trained, as a job
    killed there would (its last checkpoint stays)."""
    import rethink.training.loop

    real, calls = rethink.training.loop.train_epoch, []

    def train_epoch(*args):
        if len(calls) == epochs:
            raise Interrupted
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(rethink.training.loop, "train_epoch", train_epoch)


# Dropout and a random crop: every random stream a checkpoint carries is in use.
RESUMED = dict(
    model="mlp1x512", regularizer="crop+dropout", train_subset=512, max_epochs=8,
    checkpoint_every=2, **CPU,
)  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(variants, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    train_run(variants["random"], run_dir, RunConfig(**RESUMED))
    return history_without_time(run_dir)


def interrupted_run(variants, run_dir, monkeypatch, config: RunConfig | None = None):
    """A run (RESUMED's unless `config`) stopped after epoch 5; its checkpoint is from epoch 4."""
    with monkeypatch.context() as patch:
        interrupt_after(patch, 5)
        with pytest.raises(Interrupted):
            train_run(variants["random"], run_dir, config or RunConfig(**RESUMED))
    return run_dir / "checkpoint.pt"


def test_an_interrupted_run_resumes_to_the_uninterrupted_history(
    variants, uninterrupted, tmp_path, monkeypatch, caplog
):
    interrupted_run(variants, tmp_path, monkeypatch)
    summary = train_run(variants["random"], tmp_path, RunConfig(**RESUMED))
    assert "resuming after epoch 4" in caplog.text
    pd.testing.assert_frame_equal(history_without_time(tmp_path), uninterrupted)
    assert summary["epochs"] == 8 and uninterrupted.epoch.tolist() == list(range(1, 9))
    seconds = pd.read_csv(tmp_path / "history.csv").seconds  # counted on across the restart
    assert (seconds > 0).all() and seconds.is_monotonic_increasing


def test_a_workflow_job_keeps_its_checkpoint_for_a_rerun_of_its_finished_run(
    variants, uninterrupted, tmp_path, monkeypatch, caplog
):
    """A job killed after training wrote its outputs and before Snakemake registered them (a
    cluster's time limit) has them deleted: its rerun resumes rather than starting over."""
    monkeypatch.setenv(WORKFLOW_PID_VARIABLE, str(os.getpid()))
    train_run(variants["random"], tmp_path, RunConfig(**RESUMED))
    checkpoint = tmp_path / "checkpoint.pt"
    assert checkpoint.exists()  # the workflow removes it when it ends
    for name in ("history.csv", "steps.csv", "summary.json"):  # as Snakemake does
        (tmp_path / name).unlink()
    caplog.clear()
    summary = train_run(variants["random"], tmp_path, RunConfig(**RESUMED))
    assert "resuming after epoch 6" in caplog.text  # the last checkpoint before the end
    assert summary["epochs"] == 8
    pd.testing.assert_frame_equal(history_without_time(tmp_path), uninterrupted)


def warnings_in(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_a_checkpoint_holds_no_random_state(variants, tmp_path, monkeypatch):
    """Weights, optimizer and history: every random stream restarts from (seed, epoch), so a
    checkpoint written on a GPU resumes exactly on a CPU, or on other processes."""
    checkpoint = interrupted_run(variants, tmp_path, monkeypatch)
    payload = torch.load(checkpoint, weights_only=True)
    assert set(payload) == {"format", "config_hash", "model", "optimizer", "state"}
    assert set(payload["state"]) == {
        "epoch", "history", "step_losses", "seconds", "fitted", "fitted_step", "observers",
    }  # fmt: skip
    assert payload["state"]["epoch"] == 4 and len(payload["state"]["history"]) == 4


class CodeOnLoad:
    """A pickle that runs a command when loaded: what a crafted checkpoint could hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def unusable_checkpoints(tmp_path) -> dict:
    """How a checkpoint can fail to load: each must leave a clean start, never a failure."""
    return {
        # The format before the one training loop: random state, history rows by position.
        "an earlier version's": lambda p: p.update(
            rng={"generator": torch.zeros(16, dtype=torch.uint8)}, format=None
        ),
        # Weights of another shape under the same config hash: a partial load must not stay.
        "weights of another shape": lambda p: p["model"].update(
            {k: torch.zeros(3) for k in list(p["model"])[-2:]}
        ),
        "code in the pickle": lambda p: p.update(state=CodeOnLoad(tmp_path / "pwned")),
    }


CAUSES = {  # what each fault's warning says
    "an earlier version's": "written by an earlier version, format None",
    "weights of another shape": "Error(s) in loading state_dict",
    "code in the pickle": "Weights only load failed",
    "truncated": "PytorchStreamReader failed",
}


@pytest.mark.parametrize(
    "fault",
    ["an earlier version's", "weights of another shape", "code in the pickle", "truncated"],
)
def test_an_unusable_checkpoint_gives_one_warning_and_a_clean_start(
    variants, uninterrupted, tmp_path, monkeypatch, caplog, fault
):
    run_dir = tmp_path / "run"
    checkpoint = interrupted_run(variants, run_dir, monkeypatch)
    if fault == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    else:
        payload = torch.load(checkpoint, weights_only=True)
        unusable_checkpoints(tmp_path)[fault](payload)
        torch.save(payload, checkpoint)

    caplog.clear()
    train_run(variants["random"], run_dir, RunConfig(**RESUMED))
    (warning,) = warnings_in(caplog)
    assert warning.startswith(f"{checkpoint}: cannot resume from it (")
    assert warning.endswith("); starting from scratch") and "\n" not in warning
    assert CAUSES[fault] in warning  # the cause, in its first line
    pd.testing.assert_frame_equal(history_without_time(run_dir), uninterrupted)
    assert not (tmp_path / "pwned").exists()  # the pickled command never ran


def test_a_cpu_run_never_initializes_cuda(variants, tmp_path, monkeypatch):
    """On a machine with GPUs, a CPU run must not start CUDA (a context costs GPU memory and
    seconds, and fails where the GPUs are busy or hidden): not to train, not to checkpoint, not to
    resume. Here CUDA is made to look present, and starting it fails the test."""

    def no_cuda(*args, **kwargs):
        raise AssertionError("a CPU run initialized CUDA")

    for module in (torch.cuda, torch.cuda.random):  # two GPUs, as far as torch can tell
        monkeypatch.setattr(module, "is_available", lambda: True, raising=False)
        monkeypatch.setattr(module, "device_count", lambda: 2, raising=False)
        monkeypatch.setattr(module, "_lazy_init", no_cuda, raising=False)
    monkeypatch.setattr(torch._C, "_cuda_init", no_cuda)  # every way of starting CUDA ends here
    config = RunConfig(
        "mlp1x512", regularizer="dropout", train_subset=256, max_epochs=3, checkpoint_every=1,
        keep_checkpoint=True, **CPU,
    )  # fmt: skip
    train_run(variants["random"], tmp_path, config)  # saves a checkpoint every epoch
    summary = train_run(variants["random"], tmp_path, config)  # resumes from the last one
    assert summary["device"] == "cpu" and summary["epochs"] == 3


def test_convolutional_models_get_their_inputs_in_channels_last(
    color_dataset, tmp_path, monkeypatch
):
    """The stored network inputs are channels_last, so that no step converts its batch (RGB
    images: with one channel both memory formats are the same)."""
    import rethink.training.loop

    write_dataset(tmp_path / "rgb.h5", color_dataset)

    formats = []
    real_make_model = rethink.training.loop.make_model

    def make_model(*args):
        model = real_make_model(*args)
        model.register_forward_pre_hook(
            lambda _, inputs: formats.append(
                inputs[0].is_contiguous(memory_format=torch.channels_last)
            )
        )
        return model

    monkeypatch.setattr(rethink.training.loop, "make_model", make_model)
    config = RunConfig(
        "alexnet", crop_size=16, train_subset=256, test_subset=256, max_epochs=1, **CPU
    )
    train_run(tmp_path / "rgb.h5", tmp_path / "run", config)
    assert len(formats) >= 4 and all(formats)  # 2 training steps, evaluation of train and test


def test_the_objective_smooths_labels_as_tf_and_adds_the_auxiliary_heads_loss():
    """TF: targets (1 - s) onehot + s / classes; the auxiliary head's loss weighted on top."""
    gen = torch.Generator().manual_seed(0)
    logits, aux = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)
    y = torch.tensor([0, 1, 2, 3, 4, 0])

    def smoothed(z):
        targets = 0.9 * F.one_hot(y, 5).double() + 0.1 / 5
        return -(targets * torch.log_softmax(z.double(), dim=1)).sum()

    loss, main = Objective(label_smoothing=0.1, aux_weight=0.4)((logits, aux), y)
    torch.testing.assert_close(loss.double(), smoothed(logits) + 0.4 * smoothed(aux))
    assert main is not None and torch.equal(main, logits)
    plain, _ = Objective()(logits, y)  # the paper's: the summed cross-entropy
    torch.testing.assert_close(plain, F.cross_entropy(logits, y, reduction="sum"))


TF_RECIPE = dict(
    model="mlp1x512", train_subset=512, max_epochs=6, checkpoint_every=2, optimizer="rmsprop",
    lr_batch=32, lr_decay=0.94, lr_decay_epochs=2.0, label_smoothing=0.1,
    weight_decay_on="weights", regularizer="wd", average_decay=0.9999, precision="fp32", **CPU,
)  # fmt: skip


def test_a_run_with_averaged_weights_records_both_and_resumes_to_the_same_numbers(
    variants, tmp_path, monkeypatch
):
    """TF's recipe on an MLP: the rate scaled from batches of 32 to 128 and decayed every two
    epochs of 512 images (8 steps); the averaged weights' accuracies beside the raw ones; a
    run stopped after epoch 5 resumes (its average in the checkpoint) to the same history."""
    summary = train_run(variants["random"], tmp_path / "whole", RunConfig(**TF_RECIPE))
    history = history_without_time(tmp_path / "whole")
    assert list(history.columns) == [c for c in HISTORY_COLUMNS if c != "seconds"] + [
        "averaged_train_loss", "averaged_train_acc", "averaged_train_top5",
        "averaged_test_loss", "averaged_test_acc", "averaged_test_top5",
    ]  # fmt: skip
    assert history.lr.tolist() == pytest.approx([0.04, 0.04, 0.0376, 0.0376, 0.035344, 0.035344])
    # 0.9999 at step t is min(0.9999, (1 + t) / (10 + t)): after 24 steps the average still
    # lags the weights, and is measured on its own
    assert (history.averaged_test_loss != history.test_loss).all()
    assert summary["averaged_test_acc"] == history.averaged_test_acc.iloc[-1]
    assert summary["best_averaged_test_acc"] == history.averaged_test_acc.max()
    interrupted_run(variants, tmp_path / "resumed", monkeypatch, RunConfig(**TF_RECIPE))
    train_run(variants["random"], tmp_path / "resumed", RunConfig(**TF_RECIPE))
    pd.testing.assert_frame_equal(history_without_time(tmp_path / "resumed"), history)


def test_an_average_of_decay_zero_is_the_weights_themselves(variants, tmp_path):
    """With a decay of (almost) 0 the average is the last weights and batch norm statistics:
    its accuracies are the raw ones, measured through the same evaluation."""
    config = RunConfig(**TF_RECIPE | {"model": "alexnet-quarter", "average_decay": 1e-12,
                                      "max_epochs": 2, "train_subset": 256})  # fmt: skip
    train_run(variants["true"], tmp_path, config)
    history = pd.read_csv(tmp_path / "history.csv")
    for column in ("train_acc", "test_acc", "test_top5"):
        assert history[f"averaged_{column}"].tolist() == history[column].tolist()
    np.testing.assert_allclose(history.averaged_test_loss, history.test_loss, rtol=1e-5)
