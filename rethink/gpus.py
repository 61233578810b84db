"""One GPU per training job on a multi-GPU workstation.

`snakemake --resources gpu=N` caps how many training jobs run at once, but does not tell a job
which GPU to use. A job claims the first free GPU by holding an exclusive lock on
`.gpu-locks/gpu{i}.lock` for its whole run and exposes only that GPU to CUDA
(CUDA_VISIBLE_DEVICES). The kernel drops the lock when the job ends or dies, so a crash never
leaves a GPU claimed. Where CUDA_VISIBLE_DEVICES is already set (a SLURM job with a GPU gres,
or a user's choice), it is left alone.
"""

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import torch  # importing does not initialize CUDA; pick_device does, after a GPU is claimed

log = logging.getLogger(__name__)

LOCK_DIR = Path(".gpu-locks")


def gpu_count() -> int:
    """GPUs on this machine, from `nvidia-smi -L` (which does not initialize CUDA)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listing.splitlines())


@contextmanager
def claimed_gpu(lock_dir: Path = LOCK_DIR, poll_s: float = 1.0):
    """Claim a free GPU for the duration of the block and yield its index; yield None where
    there is nothing to choose (no GPU, or CUDA_VISIBLE_DEVICES already set). Call before
    anything touches CUDA: it reads CUDA_VISIBLE_DEVICES once."""
    n = gpu_count()
    if n == 0 or "CUDA_VISIBLE_DEVICES" in os.environ:
        yield None
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    waiting_since = None
    while True:
        for index in range(n):
            lock = (lock_dir / f"gpu{index}.lock").open("a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            with lock:
                os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
                log.info("claimed GPU %d of %d", index, n)
                try:
                    yield index
                finally:
                    del os.environ["CUDA_VISIBLE_DEVICES"]
                    log.info("released GPU %d", index)
            return
        if waiting_since is None:  # more jobs than GPUs: --resources gpu=N exceeds the count
            waiting_since = time.monotonic()
            log.warning("all %d GPUs are claimed by other jobs; waiting for one", n)
        time.sleep(poll_s)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def gpu_claimed_for(device: str):
    """The context a job on `device` runs in: a claimed GPU for "auto" and "cuda" (the job lets
    the workflow pick), nothing for "cpu" or an explicit "cuda:N"."""
    return claimed_gpu() if device in ("auto", "cuda") else contextlib.nullcontext()
