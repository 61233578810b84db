"""Atomic file output: a path either holds a finished file or nothing at all."""

import contextlib
import errno
import hashlib
import os
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
            yield tmp
        os.replace(tmp, path)
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
                write(tmp)
        for path, tmp in tmps.items():
            os.replace(tmp, path)
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
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
