"""Atomic file output: a path either holds a finished file or nothing at all.

A file is written under a temporary name beside its path (`.{name}.{pid}@{host}.part`), flushed
to disk, renamed into place, and the rename itself flushed (the folder's fsync): after a crash
or a power loss the path holds the finished file or nothing, never an empty or partial one that
Snakemake would take for finished. A temporary file left by a process that died (on this host)
is removed when the path, or a run's folder, is written again.
"""

import contextlib
import errno
import hashlib
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from rethink import RethinkError

# Errors that mean "no room for this file here": reported in one line, never as a traceback.
NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class OutputError(RethinkError):
    """An output could not be written for lack of room: full disk, exceeded quota."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    The temporary file lives in the same directory so that the final `os.replace` is an
    atomic rename, and relative links written inside the file stay valid after it. A full disk
    becomes an OutputError naming `path`; the temporary file is removed whatever happens.
    """
    path = Path(path)
    tmp = _temporary(path)
    try:
        with no_room_names(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_parts(path.parent, path.name)
            yield tmp
            _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_together(writers: dict[str | os.PathLike, Callable[[Path], object]]) -> None:
    """Write files that only mean something together, all or none.

    Each writer fills its own temporary file; once every one has succeeded they move into
    place in the given order (put the file whose presence means "finished" last). If any writer
    fails, no file moves and every temporary is removed.
    """
    tmps = {Path(path): _temporary(Path(path)) for path in writers}
    try:
        for (path, tmp), write in zip(tmps.items(), writers.values(), strict=True):
            with no_room_names(path):
                path.parent.mkdir(parents=True, exist_ok=True)
                remove_stale_parts(path.parent, path.name)
                write(tmp)
                _fsync(tmp)
        for path, tmp in tmps.items():
            os.replace(tmp, path)
        for folder in dict.fromkeys(path.parent for path in tmps):
            _fsync(folder)
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def no_room_names(path: Path) -> Iterator[None]:
    """Turn a full disk or quota inside the block into one OutputError line naming `path`."""
    try:
        yield
    except OSError as err:
        if err.errno not in NO_ROOM:
            raise
        raise OutputError(
            f"could not write {path}: {os.strerror(err.errno)}; nothing was left there. Make "
            "room on that filesystem (or ask for more quota), then rerun snakemake"
        ) from err


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}@{socket.gethostname()}.part")


_PART = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)@(?P<host>.+)\.part")


def remove_stale_parts(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporary files in `folder` (of the file `name`, or of any) whose writer, a
    process of this host, is gone; return them. Those of other hosts (a shared filesystem) and
    of live processes stay."""
    removed = []
    host = socket.gethostname()
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            part = _PART.fullmatch(entry.name)
            if part and part["host"] == host and name in (None, part["name"]):
                if not process_alive(int(part["pid"])):
                    Path(entry.path).unlink(missing_ok=True)
                    removed.append(Path(entry.path))
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process `pid` runs on this host (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _fsync(path: Path) -> None:
    """Flush a file's bytes, or a folder's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
