"""GPUs for jobs: which one a job uses, and how torch is set up on the device it runs on.

`snakemake --resources gpu=N` caps how many GPU jobs run at once, but does not tell a job which
GPU to use. A job claims a free GPU among those it may use (every GPU `nvidia-smi -L` lists, or
those a preset CUDA_VISIBLE_DEVICES lists, e.g. `salloc --gpus=4` or a user's `2,3`) by holding
an exclusive lock for its whole run, and narrows CUDA_VISIBLE_DEVICES to that GPU. The kernel
drops the lock when the job ends or dies, so a crash never leaves a GPU claimed.

With `gpus.jobs_per_gpu: k` in the config (RETHINK_JOBS_PER_GPU in a job's environment), each
GPU has k slots, one lock each, and jobs fill the first slot of every GPU before the second of
any: the paper's small models leave most of a large GPU idle, and k runs share it.

Locks are machine-wide (one directory for every checkout and user of the machine, by default
`$TMPDIR/rethink-gpu-locks`, or RETHINK_GPU_LOCK_DIR) and named by the GPU's UUID, so two
checkouts never put two jobs on one GPU, and a GPU keeps its lock whatever numbering a job sees.
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

import torch  # importing does not initialize CUDA; pick_device does, after a GPU is claimed

log = logging.getLogger(__name__)

LOCK_DIR_VARIABLE = "RETHINK_GPU_LOCK_DIR"
JOBS_PER_GPU_VARIABLE = "RETHINK_JOBS_PER_GPU"  # the Snakefile sets it from gpus.jobs_per_gpu
# cuBLAS picks reduction orders per call unless its workspace is fixed (CUDA >= 10.2): the
# setting PyTorch's reproducibility notes give; read when cuBLAS starts, so set before that.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


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


def lock_dir() -> Path:
    return Path(
        os.environ.get(LOCK_DIR_VARIABLE) or Path(tempfile.gettempdir()) / "rethink-gpu-locks"
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


def _open_lock(path: Path) -> int:
    """A descriptor to flock: created if missing, readable by every user (a read-only descriptor
    is enough to take an exclusive flock on a local filesystem)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file
        return os.open(path, os.O_RDONLY)


@contextmanager
def claimed_gpu(locks: Path | None = None, poll_s: float = 1.0, slots: int | None = None):
    """Claim a free slot of a GPU (`slots` per GPU, by default jobs_per_gpu()) for the duration
    of the block and yield the GPU's CUDA_VISIBLE_DEVICES entry; yield None where there is
    nothing to choose (no GPU, or exactly one already chosen, e.g. by SLURM). Call before
    anything touches CUDA: CUDA reads the variables once, when it starts."""
    candidates = candidate_gpus(list_gpus())
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    if len(candidates) == 0 or (preset is not None and len(candidates) == 1):
        yield None
        return
    locks = locks or lock_dir()
    locks.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # like /tmp: every user may add a lock
        locks.chmod(0o1777)
    slots = slots or jobs_per_gpu()
    waiting = False
    while True:
        for slot, (entry, uuid) in itertools.product(range(slots), candidates):
            fd = _open_lock(locks / slot_lock_name(uuid, slot))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            saved = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")}
            os.environ.update(CUDA_VISIBLE_DEVICES=entry, CUDA_DEVICE_ORDER="PCI_BUS_ID")
            log.info(
                "claimed GPU %s (%s) of %d, slot %d of %d", entry, uuid, len(candidates),
                slot + 1, slots,
            )  # fmt: skip
            try:
                yield entry
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
                os.close(fd)  # drops the lock
                log.info("released GPU %s", entry)
            return
        if not waiting:  # more jobs than slots: --resources gpu=N exceeds the count
            waiting = True
            log.warning(
                "all %d slots of %d GPUs are claimed by other jobs; waiting for one",
                slots * len(candidates), len(candidates),
            )  # fmt: skip
        time.sleep(poll_s)


def gpu_claimed_for(device: str):
    """The context a job on `device` runs in: a claimed GPU for "auto" and "cuda" (the job lets
    the workflow pick), nothing for "cpu" or an explicit "cuda:N"."""
    return claimed_gpu() if device in ("auto", "cuda") else contextlib.nullcontext()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def setup_device(name: str, threads: int, deterministic: bool = True) -> torch.device:
    """The device `name` resolves to, with torch set up for it as every job and benchmark runs:
    `threads` CPU threads; on CUDA, either deterministic algorithms (same seed, same numbers on
    the same GPU and software) or cuDNN's autotuner (fastest kernels, run-to-run noise)."""
    torch.set_num_threads(threads)
    device = pick_device(name)
    if device.type == "cuda":
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
        # warn_only: an op without a deterministic CUDA kernel warns (in the job's log) rather
        # than failing a run; the cuda-marked tests turn such a warning into a failure.
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
        if device.index is not None:
            torch.cuda.set_device(device)
    return device
