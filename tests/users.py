"""Other users of the machine, simulated: forked processes that switch to another uid.

The suite runs as root here; a test that needs two ordinary users skips, with the reason,
where it cannot switch (not root).
"""

import contextlib
import os
import pickle
import tempfile
from pathlib import Path

import pytest

VICTIM, OTHER = 23_456, 34_567  # two ordinary users; no passwd entry is needed


def needs_root():
    if os.getuid() != 0:
        pytest.skip("simulating other users needs root (to switch uid in a forked process)")


def shared_tmp() -> Path:
    """A fresh folder both users may write to, as /tmp (mode 1777)."""
    path = Path(tempfile.mkdtemp(prefix="rethink-users-", dir="/tmp"))
    path.chmod(0o1777)
    return path


def _become(uid: int, env: dict) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    os.environ.update(env)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again


def as_user(uid: int, work, *args, env: dict | None = None):
    """`work(*args)` in a forked process of user `uid` (group `uid`, no others) with `env`
    added to its environment; its return value, or its exception raised here."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            _become(uid, env or {})
            result = ("value", work(*args))
        except BaseException as err:  # noqa: BLE001 - handed to the parent
            result = ("error", err)
        with os.fdopen(write, "wb") as out:
            pickle.dump(result, out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        kind, value = pickle.load(answer)
    os.waitpid(pid, 0)
    if kind == "error":
        raise value
    return value


@contextlib.contextmanager
def running_as(uid: int, work, *args, env: dict | None = None):
    """`work(*args)` in a process of user `uid` that stays alive for the block (its locks held);
    it is killed after it."""
    ready_read, ready_write = os.pipe()
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(ready_read)
        os.close(done_write)
        try:
            _become(uid, env or {})
            kept = work(*args)  # noqa: F841 - held until the parent is done
            os.write(ready_write, b"ok")
        except BaseException as err:  # noqa: BLE001
            os.write(ready_write, repr(err).encode())
        os.read(done_read, 1)
        os._exit(0)
    os.close(ready_write)
    os.close(done_read)
    status = os.read(ready_read, 4096).decode()
    try:
        assert status == "ok", f"user {uid}: {status}"
        yield pid
    finally:
        os.close(done_write)
        os.close(ready_read)
        os.waitpid(pid, 0)
