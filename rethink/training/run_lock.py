"""One trainer per run folder, and no trainer without its job.

Snakemake's lock keeps a second workflow out of a checkout, but not a trainer that outlived its
job (a killed workflow's orphan) from writing beside the rerun's. The process that writes a
run's files holds an exclusive flock on the run folder for the run's life; the kernel drops it
when that process dies, so a lock is never stale. A rerun that finds it held waits a little
(an orphan whose parent died is being killed) and then stops with one line.

Every process a job starts dies with it: `die_with_parent` (Linux's parent-death signal) for
the processes it starts directly, and `die_with_workflow` for the job itself, whose Snakemake
may be killed alone while the job's shell lives on.
"""

import contextlib
import ctypes
import fcntl
import logging
import os
import select
import signal
import threading
import time
from pathlib import Path

from rethink import RethinkError
from rethink.files import remove_stale_parts

log = logging.getLogger(__name__)

WORKFLOW_PID_VARIABLE = "RETHINK_WORKFLOW_PID"  # set by rules/common.smk: the job's Snakemake
ORPHAN_GRACE_S = 30  # how long a rerun waits for the last trainer to die
TERMINATE_GRACE_S = 10  # after the workflow dies: SIGTERM, then SIGKILL this long after


class RunBusyError(RethinkError):
    """Another process is training the run."""


@contextlib.contextmanager
def run_folder_lock(run_dir: Path, wait_s: float | None = None, poll_s: float = 0.2):
    """Hold the run folder's exclusive lock for the block (created if missing), waiting at most
    `wait_s` (ORPHAN_GRACE_S) for another holder to end; then remove the temporaries that dead
    writers left there."""
    run_dir = Path(run_dir)
    wait_s = ORPHAN_GRACE_S if wait_s is None else wait_s
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RunBusyError(
                        f"{run_dir} is being trained by another process that is still running "
                        f"after {wait_s:g} s (a job of another workflow, or one left from a "
                        "killed one); stop it, then rerun snakemake"
                    ) from None
                time.sleep(poll_s)
        remove_stale_parts(run_dir)  # held: any temporary left here is a dead writer's
        yield
    finally:
        os.close(fd)  # drops the lock


def workflow_job() -> bool:
    """Whether this process is (or was started by) a job of a Snakemake workflow."""
    return WORKFLOW_PID_VARIABLE in os.environ


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send `sig` to this process when its parent dies (as a preexec_fn, or first
    thing in a child); exit at once if the parent is gone already."""
    parent = os.getppid()
    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError, AttributeError):  # not Linux: nothing to ask
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    if parent == 1 or os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def die_with_workflow() -> None:
    """End this job when the Snakemake process that runs it ends, even by SIGKILL: SIGTERM
    (which the job's handlers pass on to its processes), then SIGKILL if it still runs. No-op
    outside a workflow."""
    try:
        pid = int(os.environ.get(WORKFLOW_PID_VARIABLE, ""))
        watched = os.pidfd_open(pid)
    except (ValueError, OSError, AttributeError):  # no workflow, gone already, or not Linux
        return
    threading.Thread(target=_end_after, args=(watched, pid), daemon=True).start()


def _end_after(watched: int, pid: int) -> None:
    select.select([watched], [], [])  # readable once the process has ended
    log.error("the workflow's Snakemake (pid %d) ended; stopping this job", pid)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(TERMINATE_GRACE_S)
    os.kill(os.getpid(), signal.SIGKILL)
