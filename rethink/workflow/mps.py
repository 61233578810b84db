"""NVIDIA's Multi-Process Service for the training jobs of one local workflow (`gpus.mps`).

Without MPS, the CUDA contexts of k processes on one GPU take turns (time slicing); under MPS
their kernels run side by side, which is what several small runs per GPU need to add up. The
control daemon runs as the user, without root: its pipe and log directories are the user's own,
in a folder no other user can have made or enter (CUDA_MPS_PIPE_DIRECTORY,
CUDA_MPS_LOG_DIRECTORY, which every job inherits). A daemon already listening there (another
workflow of the same user) is used and left running.
"""

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from rethink.workflow.user_folders import private_folder

log = logging.getLogger(__name__)

CONTROL = "nvidia-cuda-mps-control"


def mps_directory() -> Path:
    """Short (a UNIX socket path holds about 100 bytes) and per user."""
    return Path(tempfile.gettempdir()) / f"rethink-mps-{os.getuid()}"


_FOLDER_FIX = "remove it (or set TMPDIR elsewhere) and rerun; with gpus.mps: false no MPS is used"


def _control(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shutil.which(CONTROL), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def start_mps(directory: Path | None = None) -> bool:
    """Point this process's environment (and its future jobs') at an MPS daemon, starting one;
    True when this call started it (so it is this workflow's to stop)."""
    if shutil.which(CONTROL) is None:
        log.warning("gpus.mps: %s is not on PATH; jobs share GPUs without MPS", CONTROL)
        return False
    # A folder planted by another user would point the jobs at their daemon: only this user's
    directory = private_folder(directory or mps_directory(), _FOLDER_FIX)  # own, mode 0700
    pipe, logs = directory / "pipe", directory / "log"
    for path in (pipe, logs):
        path.mkdir(exist_ok=True, mode=0o700)
    os.environ.update(CUDA_MPS_PIPE_DIRECTORY=str(pipe), CUDA_MPS_LOG_DIRECTORY=str(logs))
    if (pipe / "control").exists() and _control(stdin="get_server_list\n").returncode == 0:
        log.info("gpus.mps: using the MPS daemon already running at %s", pipe)
        return False
    started = _control("-d")
    if started.returncode != 0:
        log.warning("gpus.mps: MPS did not start (%s); jobs share GPUs without it",
                    (started.stderr or started.stdout).strip())  # fmt: skip
        return False
    log.info("gpus.mps: started the MPS daemon at %s", pipe)
    return True


def stop_mps() -> None:
    """Stop the daemon this environment points at (it finishes its clients' work first), and
    forget it."""
    if shutil.which(CONTROL) and "CUDA_MPS_PIPE_DIRECTORY" in os.environ:
        _control(stdin="quit\n")
        log.info("gpus.mps: stopped the MPS daemon")
    for name in ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"):
        os.environ.pop(name, None)  # processes started from here on go without it
