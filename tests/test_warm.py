"""Warm starts (rethink.warm): a job handed to the server runs in a forked child exactly as it
would in its own process (directory, environment, streams, exit status), dies with its script
process, and is refused whenever the child could differ from a fresh process."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from rethink import warm
from tests.conftest import copy_workflow, run_snakemake

# A job script as Snakemake runs one: `snakemake` is injected, delegate() comes first.
SCRIPT = """\
from rethink.warm import delegate

delegate(snakemake, __file__)

import os, sys, time
from pathlib import Path

warm = "torch" in sys.modules  # imported by the server, never by this script
report = dict(pid=os.getpid(), ppid=os.getppid(), cwd=os.getcwd(), argv0=sys.argv[0],
              marker=os.environ.get("MARKER"), warm=warm, job=snakemake["job"])
Path(snakemake["report"]).write_text(repr(report))
print("to stdout", flush=True)
print("to stderr", file=sys.stderr, flush=True)
{body}
"""

# How Snakemake runs a script: a fresh interpreter with `snakemake` in the script's globals.
CLIENT = (
    "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__', "
    "init_globals={'snakemake': {'job': 'j1', 'report': sys.argv[2]}})"
)


@pytest.fixture
def server(tmp_path):
    """A warm-start server for this test's jobs; its log."""
    log = tmp_path / "warm.log"
    stop = warm.start_server(str(log))
    socket_path = Path(os.environ[warm.SOCKET_VARIABLE])
    deadline = time.monotonic() + 120
    while not socket_path.exists() or "serving" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    yield log
    stop()
    assert warm.SOCKET_VARIABLE not in os.environ and not socket_path.exists()


def job(tmp_path, body="", env=None, **kwargs) -> tuple[subprocess.Popen, Path]:
    """Start a job script process as Snakemake would; it reports to the returned path."""
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(body=textwrap.dedent(body)))
    report = tmp_path / "report.txt"
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    threads = dict.fromkeys(warm.LOAD_TIME_VARIABLES, "1")  # as Snakemake sets them
    process = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(script), str(report)], cwd=workdir,
        env=os.environ | threads | (env or {}), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, **kwargs,
    )  # fmt: skip
    return process, report


def read_report(report: Path) -> dict:
    return eval(report.read_text())  # noqa: S307 (our own repr of a dict of plain values)


def wait_for(path: Path, seconds=60):
    deadline = time.monotonic() + seconds
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def gone(pid: int, seconds=20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_job_runs_in_a_warm_child_as_in_its_own_process(server, tmp_path):
    process, report = job(tmp_path, body="sys.exit(3)", env={"MARKER": "m1"})
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 3
    seen = read_report(report)
    assert seen["warm"] and seen["pid"] != process.pid  # forked by the server, torch imported
    assert seen["cwd"] == str(tmp_path / "work") and seen["marker"] == "m1"
    assert seen["argv0"] == str(tmp_path / "job.py") and seen["job"] == "j1"
    assert stdout == "to stdout\n" and stderr == "to stderr\n"
    assert f"job.py: job process {seen['pid']}" in server.read_text()


def test_without_a_server_the_script_runs_in_its_own_process(tmp_path, monkeypatch):
    monkeypatch.delenv(warm.SOCKET_VARIABLE, raising=False)
    process, report = job(tmp_path)
    process.communicate(timeout=120)
    assert process.returncode == 0
    seen = read_report(report)
    assert seen["pid"] == process.pid and not seen["warm"]


def test_a_crash_in_the_child_fails_the_job_with_its_traceback(server, tmp_path):
    process, _ = job(tmp_path, body="raise ValueError('bad thing')")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "Traceback" in stderr and "ValueError: bad thing" in stderr


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_job_script_kills_the_child(server, tmp_path, sig):
    """Snakemake kills a job's process (SIGKILL on Ctrl-C, SIGTERM from a user): the child,
    which is not its descendant, goes too."""
    process, report = job(tmp_path, body="time.sleep(600)")
    wait_for(report)
    child = read_report(report)["pid"]
    process.send_signal(sig)
    process.communicate(timeout=60)
    assert process.returncode != 0
    assert gone(child)


def test_the_server_ends_with_the_process_that_started_it(tmp_path):
    log = tmp_path / "warm.log"
    starter = (
        "import os, sys, time; from rethink import warm; warm.start_server(sys.argv[1]); "
        "print(os.environ[warm.SOCKET_VARIABLE], flush=True); time.sleep(600)"
    )
    parent = subprocess.Popen([sys.executable, "-c", starter, str(log)], stdout=subprocess.PIPE)
    socket_path = Path(parent.stdout.readline().decode().strip())
    wait_for(log)
    server = int(subprocess.check_output(["pgrep", "-f", f"rethink.warm {socket_path}"]))
    parent.kill()  # no atexit: the server notices its parent is gone
    parent.wait()
    parent.stdout.close()
    assert gone(server)


def test_stopping_the_server_at_any_point_of_its_imports_ends_it(tmp_path):
    """Snakemake stops the server when it exits, which can be while it is still importing
    torch (a first job failed at once): stop() must not wait for ever."""
    for delay in (0.0, 0.3, 0.8, 1.5, 2.5):
        stop = warm.start_server(str(tmp_path / "warm.log"))
        directory = Path(os.environ[warm.SOCKET_VARIABLE]).parent
        time.sleep(delay)
        started = time.monotonic()
        stop()
        assert time.monotonic() - started < 15 and not directory.exists()


def request(**changes) -> dict:
    return dict(
        prefix=sys.prefix, package=str(warm.PACKAGE),
        environ={v: os.environ.get(v) for v in warm.LOAD_TIME_VARIABLES},
    ) | changes  # fmt: skip


def test_a_job_the_child_could_run_differently_is_refused(tmp_path, monkeypatch):
    module = tmp_path / "module.py"
    module.write_text("x = 1\n")
    loaded = {str(module): warm._stamp(str(module))}
    assert warm._refusal(request(), loaded) is None
    assert "runs in /elsewhere" in warm._refusal(request(prefix="/elsewhere"), loaded)
    assert "imports rethink from /copy" in warm._refusal(request(package="/copy"), loaded)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = request(environ={v: "4" for v in warm.LOAD_TIME_VARIABLES})
    assert "OMP_NUM_THREADS" in warm._refusal(threads, loaded)
    module.write_text("x = 22\n")  # edited after the server imported it
    assert f"{module} changed since the server imported it" in warm._refusal(request(), loaded)


VARIANTS = ["true", "random"]


@pytest.mark.slow
def test_warm_and_cold_studies_give_the_same_results(tmp_path):
    """A small study with warm starts and without: every training job forked by the server,
    the same numbers."""
    config = dict(
        datasets=["mnist5k"], variants={"names": VARIANTS},
        runs=[{"models": ["mlp1x512"], "regularizers": ["none"]}],
        training={"max_epochs": 3, "record_examples": False},
    )  # fmt: skip
    targets = [f"results/runs/mnist5k/{v}/mlp1x512/none/seed0/history.csv" for v in VARIANTS]
    histories = {}
    for warm_start in (True, False):
        workdir = copy_workflow(tmp_path / str(warm_start), config | {"warm_start": warm_start})
        result = run_snakemake(workdir, "--cores", "2", *targets, repo=workdir)
        assert result.returncode == 0, result.stderr
        log = workdir / "logs" / "warm-start.log"
        assert log.exists() == warm_start
        if warm_start:
            assert log.read_text().count("train_run.py: job process") == len(targets)
        histories[warm_start] = [
            pd.read_csv(workdir / target).drop(columns="seconds") for target in targets
        ]
    for warm_history, cold_history in zip(*histories.values(), strict=True):
        pd.testing.assert_frame_equal(warm_history, cold_history)
