"""Faults leave nothing that looks finished: a full disk, a second Snakemake, a Ctrl-C.

The full disk is real: a small tmpfs, mounted for the test (which needs root, as CI has).
"""

import contextlib
import copy
import errno
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from rethink.data.datasets import write_dataset_file
from rethink.data.variants import write_variant_file
from rethink.files import OutputError
from rethink.training.loop import train_run
from rethink.training.settings import RunConfig
from tests.conftest import (
    copy_workflow,
    run_snakemake,
    run_with_deadline,
    snakemake_command,
    snakemake_env,
)
from tests.training.test_run_lock import processes_of, wait_until_gone

FILLER = ".filler"


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "rethink-test", str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode and not os.environ.get("CI"):  # CI runs as root and must never skip
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr


@pytest.fixture
def small_disk(tmp_path):
    """Mounts a tmpfs of the given size at a path; all are unmounted after the test."""
    mounted = []

    def mount(path: Path, size: str = "1m") -> Path:
        mount_tmpfs(path, size)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(disk: Path, leave_bytes: int = 0) -> None:
    """Fill `disk` until the kernel says it is full, then free `leave_bytes` (whole pages)."""
    with open(disk / FILLER, "wb", buffering=0) as f:
        try:
            while True:
                f.write(bytes(4096))
        except OSError as err:
            assert err.errno == errno.ENOSPC
    os.truncate(disk / FILLER, (disk / FILLER).stat().st_size - leave_bytes)


def left_on(disk: Path) -> list[str]:
    """Every file on `disk` but the filler, temporaries included, in any directory."""
    return sorted(
        str(p.relative_to(disk)) for p in disk.rglob("*") if p.is_file() and p.name != FILLER
    )


def assert_one_line_naming(err: pytest.ExceptionInfo, path: Path) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert f"could not write {path}: No space left on device" in message
    assert "rerun snakemake" in message


def test_a_full_disk_while_writing_a_dataset_leaves_nothing(small_disk, tmp_path):
    disk = small_disk(tmp_path / "disk")  # 1 MiB; mnist5k.h5 takes 3.9 MB
    with pytest.raises(OutputError) as err:
        write_dataset_file("mnist5k", [], {"seed": 0, "test_per_class": 100}, disk / "mnist5k.h5")
    assert_one_line_naming(err, disk / "mnist5k.h5")
    assert left_on(disk) == []


def test_a_full_disk_while_writing_a_variant_leaves_nothing(small_disk, variants, tmp_path):
    disk = small_disk(tmp_path / "disk")
    output = disk / "random-pixels.h5"  # an image copy, 3.9 MB
    with pytest.raises(OutputError) as err:
        write_variant_file(str(variants["true"]), str(output), "random-pixels", seed=0)
    assert_one_line_naming(err, output)
    assert left_on(disk) == []


SHORT_RUN = dict(model="mlp1x512", train_subset=256, test_subset=256, max_epochs=2, device="cpu")


def test_a_full_disk_while_writing_a_runs_outputs_leaves_none_of_them(
    small_disk, variants, tmp_path
):
    """history.csv fits in the one page left, steps.csv does not: neither stays, nor does
    summary.json appear (its presence means "finished")."""
    disk = small_disk(tmp_path / "disk")
    fill(disk, leave_bytes=4096)
    run_dir = disk / "run"
    with pytest.raises(OutputError) as err:
        train_run(variants["random"], run_dir, RunConfig(**SHORT_RUN, checkpoint_every=100))
    assert_one_line_naming(err, run_dir / "steps.csv")
    assert left_on(disk) == []


def test_a_full_disk_while_checkpointing_leaves_no_checkpoint(small_disk, variants, tmp_path):
    disk = small_disk(tmp_path / "disk")
    fill(disk)
    with pytest.raises(OutputError) as err:
        train_run(variants["random"], disk / "run", RunConfig(**SHORT_RUN, checkpoint_every=1))
    assert_one_line_naming(err, disk / "run" / "checkpoint.pt")
    assert left_on(disk) == []


@pytest.mark.slow
def test_a_full_disk_fails_the_job_with_one_line_and_no_traceback(small_disk, tmp_path):
    root = copy_workflow(tmp_path / "study", {"datasets": ["mnist5k"]})
    disk = small_disk(root / "results")  # not results/datasets: Snakemake removes that
    result = run_snakemake(root, "--cores", "1", "results/datasets/mnist5k.h5", repo=root)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "could not write" in line]
    assert len(lines) == 1 and "results/datasets/mnist5k.h5: No space left on device" in lines[0]
    assert "Traceback" not in result.stderr
    assert left_on(disk) == []
    assert lines[0] in (root / "logs/datasets/mnist5k.log").read_text()


RUN = "results/runs/mnist5k/random/mlp3x512/none/seed0"
LONG_EPOCHS = 40
LONG_STUDY = {
    "datasets": ["mnist5k"],
    "variants": {"names": ["random"]},
    "runs": [{"models": ["mlp3x512"], "regularizers": ["none"]}],
    # Never fits at this rate: 40 epochs of 4,000 images (~16 s on one core in fp32, which
    # this test's timing relies on: bf16 is 2.7x faster), a checkpoint every 5.
    "training": {
        "device": "cpu",
        "max_epochs": LONG_EPOCHS,
        "models": {"mlp3x512": {"lr": 0.0005, "precision": "fp32"}},
    },  # fmt: skip
}


def wait_for(path: Path, process: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, "snakemake ended before writing " + str(path)
        assert time.monotonic() < deadline, f"no {path} after {timeout_s} s"
        time.sleep(0.1)


def start_snakemake(root: Path, cores: str, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """Snakemake training RUN in the background, in its own process group as a terminal's
    foreground job, with Ctrl-C's signal handled as in a terminal: a suite started in the
    background of a script (`pytest &`) inherits SIGINT ignored, and so would Snakemake."""
    return subprocess.Popen(
        snakemake_command(root, "--cores", cores, f"{RUN}/summary.json", repo=root),
        cwd=root, env=snakemake_env(root), stdout=subprocess.DEVNULL, stderr=stderr, text=True,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def job_pids(root: Path) -> list[int]:
    """The training job's process: the one that holds the run's log open."""
    log = str(root / "logs/runs/mnist5k/random/mlp3x512/none/seed0.log")
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            opened = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:
            continue
        if log in opened:
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
@pytest.mark.parametrize("first_reached", [None, "snakemake", "job"])
def test_ctrl_c_leaves_nothing_finished_and_the_rerun_resumes(tmp_path, first_reached):
    """Ctrl-C sends SIGINT to the terminal's whole process group, and which process acts on it
    first is a race: the job (which then fails), or Snakemake (which then stops the job). The
    test plays both orders (the other one a second later) and the signal to the group at once:
    each way nothing looks finished, and the rerun resumes."""
    root = copy_workflow(tmp_path / "study", LONG_STUDY)
    first = start_snakemake(root, "1", stderr=subprocess.PIPE)
    try:
        wait_for(root / RUN / "checkpoint.pt", first)
        (job,) = job_pids(root)
        if first_reached is None:
            os.killpg(first.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        else:
            order = [first.pid, job] if first_reached == "snakemake" else [job, first.pid]
            for pid in order:
                with contextlib.suppress(ProcessLookupError):  # ended by the first already
                    os.kill(pid, signal.SIGINT)
                time.sleep(1)
        _, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode != 0
    assert "Traceback" not in stderr
    # Nothing looks finished, nothing half-written stays; the checkpoint does.
    outputs = sorted(p.name for p in (root / RUN).iterdir())
    assert outputs == ["checkpoint.pt"], outputs
    assert not list((root / "results").rglob("*.part"))

    again = run_snakemake(root, "--cores", "1", f"{RUN}/summary.json", repo=root)
    assert again.returncode == 0, again.stderr[-3000:]
    log = (root / "logs/runs/mnist5k/random/mlp3x512/none/seed0.log").read_text()
    resumed = re.search(r"resuming after epoch (\d+)", log)
    assert resumed and int(resumed[1]) % 5 == 0 and int(resumed[1]) >= 5, log[-2000:]
    history = pd.read_csv(root / RUN / "history.csv")
    epochs = list(range(1, LONG_EPOCHS + 1))
    assert history.epoch.tolist() == epochs
    assert history.step.tolist() == [32 * e for e in epochs]  # 4,000 images, batch 128
    assert not (root / RUN / "checkpoint.pt").exists()


@pytest.mark.slow
def test_a_second_snakemake_is_locked_out(tmp_path):
    root = copy_workflow(tmp_path / "study", LONG_STUDY)
    first = start_snakemake(root, "1")
    try:
        wait_for(root / RUN / "checkpoint.pt", first)
        second = run_snakemake(root, "--cores", "1", repo=root)
        assert second.returncode == 1
        assert "Directory cannot be locked" in second.stderr
        assert "--unlock" in second.stderr
        assert first.poll() is None, "the first snakemake must still be running"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


@pytest.mark.slow
def test_sigkill_of_the_workflow_leaves_no_process_of_a_distributed_run(tmp_path):
    """The audit's case: both gloo workers of a 2-process run kept training after Snakemake's
    process group was killed, and the rerun had four workers writing one run folder."""
    study = copy.deepcopy(LONG_STUDY)
    study["training"] |= {"max_epochs": 20, "record_examples": False}
    study["training"]["models"]["mlp3x512"] |= {"gpus_per_node": 2}
    root = copy_workflow(tmp_path / "study", study)
    first = start_snakemake(root, "2")
    try:
        wait_for(root / RUN / "checkpoint.pt", first)
        assert len([p for p in processes_of(root) if "rethink.workflow.launch" in p]) >= 2
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert wait_until_gone(root, seconds=10) == []

    assert run_snakemake(root, "--unlock", repo=root).returncode == 0
    again = run_snakemake(root, "--cores", "2", f"{RUN}/summary.json", repo=root)
    assert again.returncode == 0, again.stderr[-3000:]
    log = (root / "logs/runs/mnist5k/random/mlp3x512/none/seed0.log").read_text()
    assert re.search(r"resuming after epoch [1-9]", log), log[-2000:]
    assert pd.read_csv(root / RUN / "history.csv").epoch.tolist() == list(range(1, 21))


def test_a_workflow_run_past_its_time_limit_fails_the_test_and_leaves_no_process(tmp_path):
    command = ["bash", "-c", "sleep 300 & echo started >&2; wait"]
    with pytest.raises(pytest.fail.Exception, match=r"(?s)ran past 2 s.*started.*sleep 300"):
        run_with_deadline(command, timeout=2, cwd=tmp_path)
    assert not wait_until_gone(str(tmp_path))
