"""Starting a run on its processes (torch.distributed, gloo on the CPU): 2 streamed processes
train as 1 process in memory, resumption after a kill on another process count, torchrun and srun
command lines, the rendezvous port, signals, and the config checks that stop impossible settings
before any job."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from rethink.config import ConfigError, check_config
from rethink.training.settings import RunConfig
from rethink.workflow.launch import LaunchError, _processes_context, command, train_job
from tests.conftest import REPO

SMALLEST_SPLIT = 500  # test images of every run here (test_subset)


def config(**overrides) -> RunConfig:
    values = dict(
        model="mlp1x512", seed=3, max_epochs=3, device="cpu", precision="fp32",
        eval_batch_size=500, checkpoint_every=1, train_subset=2048, test_subset=500,
        lr_decay_steps=16,  # 0.95 an epoch, the schedule these tolerances were measured with
    )  # fmt: skip
    return RunConfig(**(values | overrides))


def numbers(run_dir) -> tuple:
    history = pd.read_csv(run_dir / "history.csv").drop(columns="seconds")
    return history, pd.read_csv(run_dir / "steps.csv")


def assert_same_run(a, b, rtol=1e-5, flipped=0) -> None:
    """Equal up to floating-point summation order (gloo's all-reduce adds in its own order;
    the differences grow as training goes on): losses within `rtol`, accuracies within
    `flipped` examples of the smallest split (a last-digit change can move an example across
    the decision boundary)."""
    for x, y in zip(numbers(a), numbers(b), strict=True):
        accuracies = [column for column in x.columns if column.endswith(("_acc", "_top5"))]
        pd.testing.assert_frame_equal(
            x.drop(columns=accuracies), y.drop(columns=accuracies),
            check_exact=False, rtol=rtol, atol=1e-7,
        )  # fmt: skip
        flips = (x[accuracies] - y[accuracies]).abs() * SMALLEST_SPLIT
        assert (flips <= flipped + 1e-9).all().all(), (x[accuracies], y[accuracies])


def test_two_gloo_processes_train_as_one_process_with_the_same_global_batch(variants, tmp_path):
    one = train_job(str(variants["true"]), tmp_path / "one", config(), str(tmp_path / "1.log"))
    two = train_job(
        str(variants["true"]), tmp_path / "two", config(gpus_per_node=2, threads=2),
        str(tmp_path / "2.log"),
    )  # fmt: skip
    assert_same_run(tmp_path / "one", tmp_path / "two")
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["config_hash"] == two["config_hash"]  # the process count changes no number
    assert "on 2 process(es)" in (tmp_path / "2.log").read_text()
    assert two["train_acc"] > 0.8  # and it learns


RECORDED = (
    "assigned_label", "corrupted", "epochs/predictions", "epochs/presented_correct",
    "epochs/margins",
)  # fmt: skip


def test_two_processes_keep_the_per_example_record_of_one(variants, source_dataset, tmp_path):
    """Each process sees its share of the batches and of the evaluation: the record gathers
    them into what one process records."""
    runs = {"one": config(record_examples=True),
            "two": config(record_examples=True, gpus_per_node=2, threads=2)}  # fmt: skip
    records = {}
    for name, run in runs.items():
        train_job(str(variants["random"]), tmp_path / name, run, str(tmp_path / f"{name}.log"),
                  str(source_dataset))  # fmt: skip
        with h5py.File(tmp_path / name / "examples.h5") as f:
            records[name] = {key: f[key][()] for key in RECORDED}
    one, two = records["one"], records["two"]
    assert one["epochs/predictions"].shape == (3, 2048)
    for key in ("assigned_label", "corrupted"):
        np.testing.assert_array_equal(one[key], two[key])
    for key in ("epochs/predictions", "epochs/presented_correct"):  # up to near ties
        assert (one[key] == two[key]).mean() > 0.995
    np.testing.assert_allclose(one["epochs/margins"], two["epochs/margins"], atol=0.02)


def test_a_killed_distributed_run_resumes_on_another_number_of_processes(
    variants, tmp_path, caplog
):
    slow = dict(model="mlp3x512", max_epochs=8, train_subset=None, lr_decay_steps=32)  # seconds
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    run = config(gpus_per_node=2, threads=2, **slow)
    script = (
        "import sys; from rethink.workflow.launch import train_job;"
        "from rethink.training.settings import RunConfig;"
        f"train_job({str(variants['true'])!r}, {str(killed)!r}, RunConfig(**{run.__dict__!r}),"
        f" {str(tmp_path / 'killed.log')!r})"
    )
    job = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint.pt").exists():
        assert job.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    time.sleep(0.5)
    job.send_signal(signal.SIGKILL)  # as a node failure or `scancel -s KILL` would
    job.wait()
    time.sleep(3)  # the workers die with the launcher (parent-death signal to torchrun)
    workers = subprocess.run(["pgrep", "-f", str(killed)], capture_output=True, text=True)
    assert workers.stdout.strip() == "", "processes of the killed run still run"
    assert not (killed / "summary.json").exists()

    resumed = train_job(str(variants["true"]), killed, config(**slow), str(tmp_path / "r.log"))
    train_job(str(variants["true"]), whole, run, str(tmp_path / "whole.log"))
    assert "resuming after epoch" in caplog.text  # one process: in this one
    assert resumed["processes"] == 1 and resumed["epochs"] == 8
    # 8 epochs, 3 or more after the switch from 2 processes to 1: differences of 3e-5 seen in
    # the losses, and one test image of 500 classified otherwise at one epoch (CI, Intel Xeon)
    assert_same_run(killed, whole, rtol=1e-3, flipped=1)
    assert not (killed / "checkpoint.pt").exists()


def test_several_nodes_need_a_slurm_allocation(variants, tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(LaunchError, match="inside a SLURM allocation"):
        train_job(str(variants["true"]), tmp_path, config(nodes=2), str(tmp_path / "log"))


def test_several_nodes_start_one_torchrun_per_node_with_srun(tmp_path):
    argv = command(
        "v.h5", "run", config(nodes=4, gpus_per_node=8, threads=64), "job.log", "node0:40123"
    )
    assert argv[:4] == ["srun", "--ntasks=4", "--cpus-per-task=64", "--kill-on-bad-exit=1"]
    torchrun = argv[
        argv.index("torch.distributed.run") + 1 : argv.index("rethink.workflow.launch") - 1
    ]
    assert torchrun == [
        "--nproc-per-node=8", "--nnodes=4", "--rdzv-backend=c10d",
        "--rdzv-endpoint=node0:40123", "--rdzv-id=rethink", "--rdzv-conf=is_host=0",
    ]  # fmt: skip
    worker_config = json.loads(argv[argv.index("--config") + 1])
    assert worker_config["threads"] == 8  # the node's cores shared by its 8 processes


def test_the_rendezvous_port_is_held_by_the_job_while_the_nodes_run(monkeypatch):
    """The store listens on a port the kernel chose as it bound it: no other program can take
    it between the choice and the nodes' use (binding port 0 and closing it could)."""
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    with _processes_context(config(nodes=2)) as rendezvous:
        host, port = rendezvous.rsplit(":", 1)
        assert host == socket.gethostname()
        with socket.socket() as other, pytest.raises(OSError, match="in use"):
            other.bind(("", int(port)))
        with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
            pass  # listening


def study(**training) -> dict:
    return {
        "datasets": ["mnist5k"],
        "variants": {"names": ["true"], "seed": 0, "seeds": {}, "corrupt_test_labels": False},
        "runs": [],
        "training": RunConfig("mlp1x512").__dict__ | {"models": {}, "regularizers": {}} | training,
        "cluster": {"minutes_per_million_images": {}},
    }


@pytest.mark.parametrize(
    "training, message",
    [
        ({"gpus_per_node": 3}, "global batch of 128 does not split evenly over"),
        (
            {"record_examples": True, "train_eval_images": 1000},
            "record_examples': the record needs every training example evaluated",
        ),
        (
            {"models": {"mlp1x512": {"nodes": 2, "compile": True}}},
            "compile': not available for runs on several processes",
        ),
        ({"models": {"inception-v3": {}}}, "inception-v3 .* at least 75x75, not 28"),
    ],
)
def test_impossible_distributed_settings_stop_before_any_job(training, message):
    config = study(**training)
    models = [*config["training"]["models"]] or ["mlp1x512"]
    config["runs"] = [{"variants": ["true"], "regularizers": ["none"], "seeds": [0],
                       "models": models}]  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_without_torch_distributed_single_process_runs_need_no_process_group(variants, tmp_path):
    summary = train_job(str(variants["true"]), tmp_path, config(max_epochs=1), str(tmp_path / "l"))
    assert summary["processes"] == 1 and not torch.distributed.is_initialized()
    assert os.environ.get("RANK") is None


def test_an_unusable_checkpoint_warns_once_and_the_run_starts_afresh(variants, tmp_path, caplog):
    fresh = train_job(str(variants["true"]), tmp_path / "a", config(), str(tmp_path / "a.log"))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    again = train_job(str(variants["true"]), tmp_path / "b", config(), str(tmp_path / "b.log"))
    assert caplog.text.count("cannot resume from it") == 1
    assert_same_run(tmp_path / "a", tmp_path / "b", rtol=0)
    assert again["test_acc"] == fresh["test_acc"]


def test_a_batch_norm_model_trains_on_two_processes(variants, tmp_path):
    run = config(model="inception", gpus_per_node=2, threads=2, max_epochs=2, lr=0.1,
                 train_subset=256, test_subset=128, batch_size=64, eval_batch_size=64)  # fmt: skip
    summary = train_job(str(variants["true"]), tmp_path / "run", run, str(tmp_path / "log"))
    assert summary["processes"] == 2 and summary["epochs"] == 2 and summary["params"] > 1e6


def test_sigterm_reaches_the_processes_and_the_handlers_are_restored(variants, tmp_path):
    run = config(model="mlp3x512", gpus_per_node=2, threads=2, max_epochs=50, train_subset=None)
    script = (
        "import signal, sys; from rethink.workflow.launch import train_job; "
        "from rethink.training.settings import RunConfig\n"
        "try:\n"
        f"    train_job({str(variants['true'])!r}, {str(tmp_path / 'run')!r}, "
        f"RunConfig(**{run.__dict__!r}), {str(tmp_path / 'log')!r})\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)\n"
    )
    job = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                           text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while (
        "on 2 process(es)" not in _read(tmp_path / "log")
        or not (tmp_path / "run" / "checkpoint.pt").exists()
    ):
        assert job.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)  # as Snakemake or SLURM stop a job
    out, _ = job.communicate(timeout=60)
    assert out.strip() == "LaunchError True"  # the run failed, the default handler is back
    time.sleep(2)
    workers = subprocess.run(["pgrep", "-f", str(tmp_path / "run")], capture_output=True)
    assert workers.stdout.strip() == b""


def _read(path) -> str:
    return path.read_text() if path.exists() else ""
