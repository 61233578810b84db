"""GPUs for jobs: which ones a job uses (how torch is then set up on it: rethink.device).

`snakemake --resources gpu=N` caps how many GPU jobs run at once, but does not tell a job which
GPU to use. A job claims free GPUs (one, or one per process of a run) among those it may use
(every GPU `nvidia-smi -L` lists, or those a preset CUDA_VISIBLE_DEVICES lists, e.g. `salloc
--gpus=4` or a user's `2,3`) by holding an exclusive lock for its whole run, and narrows
CUDA_VISIBLE_DEVICES to them. The kernel drops the locks when the job ends or dies, so a crash
never leaves a GPU claimed.

With `gpus.jobs_per_gpu: k` in the config (RETHINK_JOBS_PER_GPU in a job's environment), each
GPU has k slots, one lock each, and jobs fill the first slot of every GPU before the second of
any: the paper's small models leave most of a large GPU idle, and k runs share it.

Locks are named by the GPU's UUID, so a GPU keeps its lock whatever numbering a job sees. They live
in this user's own folder (`$TMPDIR/rethink-gpu-locks-{uid}`, mode 0700), so every checkout of one
user coordinates and no other user can touch them; RETHINK_GPU_LOCK_DIR names a folder cooperating
users share instead (owned by root or by you, sticky if others may write:
rethink.workflow.user_folders). A lock is taken only by holding its flock: a lock file's presence
claims nothing, and a link, FIFO or folder planted in its place stops the job with one line. Locks
keep out cooperating jobs; they cannot stop another user from running on a GPU without them.
CUDA numbers GPUs fastest first unless told otherwise; CUDA_DEVICE_ORDER=PCI_BUS_ID makes its
numbers those of nvidia-smi.
"""

import contextlib
import fcntl
import itertools
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rethink import RethinkError
from rethink.workflow.user_folders import (
    open_lock_file,
    private_folder,
    shared_lock_folder,
    still_named,
)

log = logging.getLogger(__name__)

LOCK_DIR_VARIABLE = "RETHINK_GPU_LOCK_DIR"
JOBS_PER_GPU_VARIABLE = "RETHINK_JOBS_PER_GPU"  # the Snakefile sets it from gpus.jobs_per_gpu


class GpuError(RethinkError):
    """A run asks for more GPUs than its job may use."""


@dataclass(frozen=True)
class Gpu:
    index: int  # nvidia-smi's number, in PCI bus order
    uuid: str  # GPU-..., stable across reboots and CUDA_VISIBLE_DEVICES


_LISTED = re.compile(r"GPU (\d+): .*\(UUID: (\S+)\)")


def list_gpus() -> list[Gpu]:
    """The machine's GPUs, from `nvidia-smi -L` (which does not initialize CUDA)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [Gpu(int(m[1]), m[2]) for m in map(_LISTED.match, listing.splitlines()) if m]


_FOLDER_FIX = (
    f"remove it, or set {LOCK_DIR_VARIABLE} to a folder of your own (or, to share GPUs with "
    "other users, to a folder root owns with mode 1777, as /tmp)"
)


def lock_dir() -> Path:
    """RETHINK_GPU_LOCK_DIR (a folder shared by cooperating users), else this user's own."""
    shared = os.environ.get(LOCK_DIR_VARIABLE)
    if shared:
        return shared_lock_folder(Path(shared), _FOLDER_FIX)
    return private_folder(
        Path(tempfile.gettempdir()) / f"rethink-gpu-locks-{os.getuid()}", _FOLDER_FIX
    )


def jobs_per_gpu() -> int:
    return int(os.environ.get(JOBS_PER_GPU_VARIABLE) or 1)


def slot_lock_name(uuid: str, slot: int) -> str:
    """Slot 0 keeps the name a GPU's only lock has always had."""
    return f"{uuid}.lock" if slot == 0 else f"{uuid}.slot{slot}.lock"


def candidate_gpus(gpus: list[Gpu]) -> list[tuple[str, str]]:
    """(CUDA_VISIBLE_DEVICES entry, lock name) of each GPU this job may use: every GPU, or
    those CUDA_VISIBLE_DEVICES lists (by number or UUID, as CUDA reads it)."""
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    if preset is None:
        return [(str(gpu.index), gpu.uuid) for gpu in gpus]
    by_index = {str(gpu.index): gpu.uuid for gpu in gpus}
    candidates = []
    for entry in (e.strip() for e in preset.split(",")):
        if not entry or entry.startswith("-"):  # CUDA stops at an invalid entry; -1 hides all
            break
        uuid = by_index.get(entry) or next(
            (g.uuid for g in gpus if g.uuid.startswith(entry)), entry
        )
        candidates.append((entry, uuid))
    return candidates


def _try_lock(path: Path) -> int | None:
    """A descriptor holding the exclusive flock on `path`, or None if another job holds it."""
    fd = open_lock_file(path, _FOLDER_FIX)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if not still_named(fd, path):  # removed or replaced while we took it: not the lock
        os.close(fd)
        return None
    return fd


def _claim(locks: Path, candidates, slots: int, count: int) -> dict[str, int]:
    """Lock `count` slots on distinct GPUs (every GPU's first slot before any second), entry
    -> descriptor; an empty dict (nothing held) if there are not that many free."""
    held = {}
    for slot, (entry, uuid) in itertools.product(range(slots), candidates):
        if entry in held:
            continue
        fd = _try_lock(locks / slot_lock_name(uuid, slot))
        if fd is not None:
            held[entry] = fd
            if len(held) == count:
                return held
    for fd in held.values():  # all or none: two runs each holding half never wait forever
        os.close(fd)
    return {}


@contextmanager
def claimed_gpus(count: int = 1, locks: Path | None = None, poll_s: float = 1.0,
                 slots: int | None = None):  # fmt: skip
    """Claim free slots of `count` distinct GPUs (`slots` per GPU, by default jobs_per_gpu())
    for the duration of the block and yield their CUDA_VISIBLE_DEVICES value; yield None where
    there is nothing to choose (no GPU, or exactly `count` already chosen, e.g. by SLURM).
    Call before anything touches CUDA: CUDA reads the variables once, when it starts."""
    candidates = candidate_gpus(list_gpus())
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    if len(candidates) == 0 or (preset is not None and len(candidates) == count):
        yield None
        return
    if count > len(candidates):
        raise GpuError(
            f"the run needs {count} GPUs (training.gpus_per_node) and this job may use "
            f"{len(candidates)}; lower gpus_per_node or make more GPUs visible"
        )
    locks = locks or lock_dir()
    slots = slots or jobs_per_gpu()
    waiting = False
    while not (held := _claim(locks, candidates, slots, count)):
        if not waiting:  # more jobs than slots: --resources gpu=N exceeds the count
            waiting = True
            log.warning(
                "all %d slots of %d GPUs are claimed by other jobs; waiting for %d",
                slots * len(candidates), len(candidates), count,
            )  # fmt: skip
        time.sleep(poll_s)
    visible = ",".join(held)
    saved = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")}
    os.environ.update(CUDA_VISIBLE_DEVICES=visible, CUDA_DEVICE_ORDER="PCI_BUS_ID")
    log.info("claimed GPU %s of %d (%d slots each)", visible, len(candidates), slots)
    try:
        yield visible
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for fd in held.values():
            os.close(fd)  # drops the lock
        log.info("released GPU %s", visible)


def gpu_claimed_for(device: str, count: int = 1):
    """The context a job on `device` runs in: `count` claimed GPUs for "auto" and "cuda" (the
    job lets the workflow pick), nothing for "cpu" or an explicit "cuda:N"."""
    return claimed_gpus(count) if device in ("auto", "cuda") else contextlib.nullcontext()
