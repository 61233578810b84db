"""One trainer per run folder, and every process of a run dies with its job, whichever of them
is killed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rethink.training import run_lock
from rethink.training.loop import train_run
from rethink.training.run_lock import RunBusyError, run_folder_lock
from rethink.training.settings import RunConfig
from rethink.workflow.launch import train_job
from tests.conftest import REPO


def config(**overrides) -> RunConfig:
    values = dict(
        model="mlp3x512", seed=3, max_epochs=2, device="cpu", precision="fp32",
        eval_batch_size=500, checkpoint_every=1, train_subset=1024, test_subset=500,
        record_examples=False,
    )  # fmt: skip
    return RunConfig(**(values | overrides))


def test_a_second_trainer_of_a_run_folder_waits_then_stops_with_one_line(
    variants, tmp_path, monkeypatch
):
    run_dir = tmp_path / "run"
    monkeypatch.setattr(run_lock, "ORPHAN_GRACE_S", 0.5)
    with run_folder_lock(run_dir):  # another trainer, e.g. an orphan of a killed workflow
        started = time.monotonic()
        with pytest.raises(RunBusyError) as busy:
            train_run(str(variants["true"]), run_dir, config())
        assert time.monotonic() - started >= 0.5
    assert "\n" not in str(busy.value) and f"{run_dir} is being trained by another" in str(
        busy.value
    )
    assert list(run_dir.iterdir()) == []  # it wrote nothing
    train_run(str(variants["true"]), run_dir, config())  # the lock died with its holder
    assert (run_dir / "summary.json").exists()


def processes_of(marker) -> list[str]:
    """'pid command line' of each process that mentions `marker` (a test's own folder) on its
    command line or works in it (a job's run folder is relative to the workflow's)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        line = " ".join(a.decode(errors="replace") for a in argv if a)
        if (
            line
            and int(proc.name) != os.getpid()
            and (str(marker) in line or cwd.startswith(str(marker)))
        ):
            found.append(f"{proc.name} {line}")
    return found


def wait_until_gone(marker, seconds: float = 10) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := processes_of(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


TRAIN = (
    "from rethink.workflow.launch import train_job\n"
    "from rethink.training.settings import RunConfig\n"
    "train_job({variant!r}, {run_dir!r}, RunConfig(**{config!r}), {log!r})\n"
)


@pytest.mark.parametrize("killed", ["process group", "job", "torchrun"])
def test_every_process_of_a_run_dies_whichever_is_killed_and_the_rerun_resumes(
    variants, tmp_path, killed
):
    """torch starts the workers in sessions of their own: before, SIGKILL of the job's process
    group left both training, and a rerun had four workers writing one folder."""
    run_dir, log = tmp_path / "run", tmp_path / "job.log"
    run = config(gpus_per_node=2, threads=2, max_epochs=12, train_subset=None)
    script = TRAIN.format(
        variant=str(variants["true"]), run_dir=str(run_dir), config=run.__dict__, log=str(log)
    )
    job = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoint.pt").exists():
            assert job.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        if killed == "process group":  # as a terminal, Snakemake or SLURM stop a job
            os.killpg(job.pid, signal.SIGKILL)
        elif killed == "job":
            os.kill(job.pid, signal.SIGKILL)
        else:
            torchrun = [p for p in processes_of(run_dir) if "torch.distributed.run" in p]
            os.kill(int(torchrun[0].split()[0]), signal.SIGKILL)
        job.wait(timeout=30)
        assert wait_until_gone(run_dir) == []
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    if killed != "process group":
        return
    summary = train_job(str(variants["true"]), run_dir, run, str(log))
    assert summary["epochs"] == 12
    assert "resuming after epoch" in log.read_text()
    assert pd.read_csv(run_dir / "history.csv").epoch.tolist() == list(range(1, 13))


def test_a_job_ends_when_its_snakemake_is_killed_alone(tmp_path):
    """Snakemake killed by itself (the OOM killer, kill -9) leaves its jobs' shells alive: the
    job watches the Snakemake process and stops within the grace period."""
    job_code = (
        "import time; from rethink.workflow.jobs import run_job\n"
        f"run_job({str(tmp_path / 'job.log')!r}, time.sleep, 600)\n"
    )
    workflow_code = (  # stands for Snakemake: starts the job in a shell, then waits
        "import os, subprocess, sys, time\n"
        f"os.environ[{run_lock.WORKFLOW_PID_VARIABLE!r}] = str(os.getpid())\n"
        f"subprocess.Popen(['sh', '-c', sys.executable + ' -c \"$JOB\"; true'], "
        f"env=os.environ | {{'JOB': {job_code!r}}})\n"
        "time.sleep(600)\n"
    )
    workflow = subprocess.Popen([sys.executable, "-c", workflow_code], cwd=REPO)
    deadline = time.monotonic() + 30
    while not (tmp_path / "job.log").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1)
    assert any("run_job" in p for p in processes_of(tmp_path / "job.log"))
    workflow.kill()
    workflow.wait()
    assert wait_until_gone(tmp_path / "job.log", run_lock.TERMINATE_GRACE_S + 5) == []
    assert "the workflow's Snakemake" in (tmp_path / "job.log").read_text()
