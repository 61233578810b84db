"""One GPU per training job, simulated: a fake `nvidia-smi` lists the GPUs, no CUDA needed."""

import contextlib
import fcntl
import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from rethink.workflow.gpus import GpuError, claimed_gpus, list_gpus, slot_lock_name
from rethink.workflow.mps import start_mps, stop_mps
from tests.conftest import run_snakemake


def fake_uuid(i: int) -> str:
    return f"GPU-{i:08x}-7e57-4a11-9b00-{i:012x}"


def fake_nvidia_smi(directory: Path, n: int) -> str:
    """A PATH on which `nvidia-smi -L` lists n GPUs, as the real one does."""
    directory.mkdir(exist_ok=True)
    lines = "".join(f'echo "GPU {i}: Simulated H100 (UUID: {fake_uuid(i)})"\n' for i in range(n))
    smi = directory / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + lines)
    smi.chmod(0o755)
    return f"{directory}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture
def gpus(tmp_path, monkeypatch):
    """A machine with 4 fake GPUs, its own lock directory, and no CUDA_VISIBLE_DEVICES."""
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path / "bin", 4))
    monkeypatch.setenv("RETHINK_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    return tmp_path / "locks"


def held(locks: Path, gpu: int, slot: int = 0):
    """Another job's claim on a GPU (slot): an exclusive flock on its lock file."""
    locks.mkdir(exist_ok=True)
    lock = (locks / slot_lock_name(fake_uuid(gpu), slot)).open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def test_nvidia_smi_listing_is_read_with_uuids(gpus):
    assert [(g.index, g.uuid) for g in list_gpus()] == [(i, fake_uuid(i)) for i in range(4)]


def test_each_claim_gets_a_free_gpu_and_releases_it(gpus):
    with claimed_gpus() as first:
        assert first == "0" and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # CUDA numbers as nvidia-smi
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and "CUDA_DEVICE_ORDER" not in os.environ
    with held(gpus, 0), held(gpus, 1), claimed_gpus() as third:  # GPUs 0, 1 busy elsewhere
        assert third == "2" and os.environ["CUDA_VISIBLE_DEVICES"] == "2"
    with claimed_gpus() as again:  # the other jobs ended: GPU 0 is free again
        assert again == "0"


@pytest.mark.parametrize("listed", ["2,3", f"{fake_uuid(2)},{fake_uuid(3)}", "GPU-00000002,3"])
def test_a_preset_list_of_gpus_is_claimed_among_and_narrowed(gpus, monkeypatch, listed):
    """`salloc --gpus=2` or a user's `2,3`: jobs share those GPUs, one each, by number or
    UUID (or a UUID's unique prefix, which CUDA accepts too)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    first, second = listed.split(",")
    with claimed_gpus() as claimed:
        assert claimed == first and os.environ["CUDA_VISIBLE_DEVICES"] == first
    with held(gpus, 2), claimed_gpus() as claimed:  # GPU 2 busy: the job takes 3, never 0
        assert claimed == second and os.environ["CUDA_VISIBLE_DEVICES"] == second
    assert os.environ["CUDA_VISIBLE_DEVICES"] == listed  # restored after the job


def test_a_gpu_chosen_already_or_no_gpu_is_left_alone(gpus, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # e.g. set by SLURM for a gres job
    with claimed_gpus() as index:
        assert index is None and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU for this job
    with claimed_gpus() as index:
        assert index is None and os.environ["CUDA_VISIBLE_DEVICES"] == ""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no nvidia-smi: no GPU
    with claimed_gpus() as index:
        assert index is None and "CUDA_VISIBLE_DEVICES" not in os.environ


CLAIM = """
from rethink.workflow.gpus import claimed_gpus
with claimed_gpus() as gpu:
    print(gpu)
"""


def test_jobs_of_two_checkouts_never_share_a_gpu(tmp_path, monkeypatch):
    """The locks are the user's, in the temporary directory (not the checkout): a job started
    from another checkout sees the claim."""
    machine_tmp = tmp_path / "tmp"
    machine_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(machine_tmp))  # this machine's temporary dir
    monkeypatch.setenv("TMPDIR", str(machine_tmp))
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path / "bin", 2))
    for name in ("RETHINK_GPU_LOCK_DIR", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    checkouts = tmp_path / "checkout-a", tmp_path / "checkout-b"
    for checkout in checkouts:
        checkout.mkdir()
    monkeypatch.chdir(checkouts[0])
    job_env = dict(os.environ)  # as Snakemake starts a job: before any claim
    with claimed_gpus() as mine:
        theirs = subprocess.run(
            [sys.executable, "-c", CLAIM], cwd=checkouts[1], env=job_env, capture_output=True,
            text=True,
        )  # fmt: skip
    assert mine == "0" and theirs.stdout.strip() == "1", theirs.stderr
    locks = machine_tmp / f"rethink-gpu-locks-{os.getuid()}"
    assert stat.S_IMODE(locks.stat().st_mode) == 0o700  # no one else's to enter
    assert {p.name for p in locks.iterdir()} == {
        f"{fake_uuid(0)}.lock",
        f"{fake_uuid(1)}.lock",
    }


def _claims(log: Path) -> list[tuple[int, datetime, datetime]]:
    text = log.read_text()
    stamp = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
    claimed = re.findall(stamp + r" INFO rethink.workflow.gpus: claimed GPU (\d)", text)
    released = re.findall(stamp + r" INFO rethink.workflow.gpus: released GPU (\d)", text)
    parse = lambda s: datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f")  # noqa: E731
    return [(int(g), parse(a), parse(b)) for (a, g), (b, _) in zip(claimed, released, strict=True)]


def fake_mps_control(directory: Path, record: Path) -> None:
    """An `nvidia-cuda-mps-control` that records how it was called: `-d`, or what came on stdin
    (`quit`), with the pipe directory it was given."""
    control = directory / "nvidia-cuda-mps-control"
    control.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -d ]; then echo "start $CUDA_MPS_PIPE_DIRECTORY" >> {record}; '
        f'else echo "$(cat) $CUDA_MPS_PIPE_DIRECTORY" >> {record}; fi\n'
    )
    control.chmod(0o755)


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in events:  # an end sorts before a start at the same instant
        running += change
        peak = max(peak, running)
    return peak


def test_a_run_on_several_processes_claims_a_gpu_for_each(gpus):
    """All or none: with one GPU of four taken, a 2-GPU run takes two of the other three; with
    three taken it holds none and waits (two half-claimed runs would wait for each other)."""
    with held(gpus, 1), claimed_gpus(2) as claimed:
        assert claimed == "0,2" and os.environ["CUDA_VISIBLE_DEVICES"] == "0,2"
        for gpu in (0, 2):  # both held for the run's life
            with (gpus / slot_lock_name(fake_uuid(gpu), 0)).open("a") as lock:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with held(gpus, 0), held(gpus, 1), held(gpus, 2):
        with pytest.raises(TimeoutError), _deadline(1.5), claimed_gpus(2, poll_s=0.1):
            pass
        with claimed_gpus(1) as last:  # the waiting claim held nothing
            assert last == "3"
    with pytest.raises(GpuError, match="needs 5 GPUs .* may use 4"), claimed_gpus(5):
        pass


def test_a_local_run_on_several_processes_claims_its_gpus(gpus):
    """Before, torchrun's processes took GPUs 0..k-1 whatever other runs held."""
    from rethink.training.settings import RunConfig
    from rethink.workflow.launch import _processes_context

    run = RunConfig("mlp1x512", gpus_per_node=2, device="auto")
    with held(gpus, 0), _processes_context(run):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1,2"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise TimeoutError in the block after `seconds` (the main thread, via SIGALRM)."""

    def expire(number, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_slots_fill_every_gpu_before_doubling_up(gpus):
    """jobs_per_gpu = 2: a job takes a GPU nobody uses if there is one, else a second slot."""
    with held(gpus, 0), claimed_gpus(slots=2) as claimed:
        assert claimed == "1"
    with contextlib.ExitStack() as others:
        for gpu in range(4):
            others.enter_context(held(gpus, gpu))
        with claimed_gpus(slots=2) as claimed:
            assert claimed == "0"
        others.enter_context(held(gpus, 0, slot=1))
        with claimed_gpus(slots=2) as claimed:
            assert claimed == "1"
    assert {p.name for p in gpus.iterdir()} >= {f"{fake_uuid(0)}.slot1.lock"}


@pytest.mark.slow
@pytest.mark.parametrize("jobs_per_gpu", [1, 2])
def test_training_jobs_share_gpus_as_configured(tmp_path, jobs_per_gpu):
    """Two GPUs, `--resources gpu=2k`: 2k jobs at once, never more than k on one GPU; with
    gpus.mps, MPS is started before the first job, seen by every job and stopped at the end."""
    study = {
        "datasets": ["mnist5k"],
        "variants": {"names": ["true", "random", "gaussian"]},
        "runs": [{"models": ["mlp1x512", "mlp3x512"], "regularizers": ["none"]}],
        "training": {"max_epochs": 8, "test_subset": 256, "record_examples": False},
        "gpus": {"jobs_per_gpu": jobs_per_gpu, "mps": jobs_per_gpu > 1},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(study))
    bin_dir, mps_record = tmp_path / "bin", tmp_path / "mps.txt"
    env = {"PATH": fake_nvidia_smi(bin_dir, 2), "RETHINK_GPU_LOCK_DIR": str(tmp_path)}
    (bin_dir / "nvidia-smi").write_text(  # also records the MPS pipe each job sees
        (bin_dir / "nvidia-smi").read_text()
        + f'echo "job $CUDA_MPS_PIPE_DIRECTORY" >> {mps_record}\n'
    )
    fake_mps_control(bin_dir, mps_record)
    env["TMPDIR"] = str(tmp_path)
    slots = 2 * jobs_per_gpu
    result = run_snakemake(
        tmp_path, "results/tables/runs.csv", "--cores", "4", "--resources", f"gpu={slots}",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    claims = [c for log in (tmp_path / "logs" / "runs").rglob("*.log") for c in _claims(log)]
    assert len(claims) == 6 and {gpu for gpu, _, _ in claims} == {0, 1}
    for gpu in (0, 1):
        assert most_at_once([(start, end) for g, start, end in claims if g == gpu]) <= jobs_per_gpu
    assert most_at_once([(start, end) for _, start, end in claims]) == slots
    for summary in (tmp_path / "results" / "runs").rglob("summary.json"):
        assert json.loads(summary.read_text())["cuda_visible_devices"] in {"0", "1"}
    calls = mps_record.read_text().splitlines()
    if jobs_per_gpu == 1:  # no MPS: jobs see no pipe
        assert all(call.strip() == "job" for call in calls)
        return
    pipe = str(tmp_path / f"rethink-mps-{os.getuid()}" / "pipe")
    assert calls[0] == f"start {pipe}" and calls[-1] == f"quit {pipe}"
    jobs = calls[1:-1]
    assert len(jobs) >= 6 and set(jobs) == {f"job {pipe}"}


def test_mps_starts_once_is_shared_and_stops(tmp_path, monkeypatch, caplog):
    """start_mps starts a daemon only where none listens, and says so; stop_mps quits it and
    takes its pipe out of the environment; without the control program, a warning."""
    record, system_path = tmp_path / "mps.txt", os.environ["PATH"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert not start_mps(tmp_path / "mps")
    assert "nvidia-cuda-mps-control is not on PATH" in caplog.text
    (tmp_path / "bin").mkdir()
    fake_mps_control(tmp_path / "bin", record)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{system_path}")
    for name in ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    pipe = tmp_path / "mps" / "pipe"
    assert start_mps(tmp_path / "mps")
    assert os.environ["CUDA_MPS_PIPE_DIRECTORY"] == str(pipe)
    (pipe / "control").touch()  # a daemon listens there now: the next workflow shares it
    assert not start_mps(tmp_path / "mps")
    stop_mps()
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ
    assert record.read_text().splitlines() == [
        f"start {pipe}",
        f"get_server_list {pipe}",
        f"quit {pipe}",
    ]
