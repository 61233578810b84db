"""Folders and lock files in places other users of the machine can write to ($TMPDIR, /tmp).

Another user may have planted anything there first: a link to one of your folders, a folder of
theirs, a FIFO. Nothing here follows a link, changes the mode of anything this user does not
own, or writes through a path of someone else's making; what it cannot use it names in one
line with the fix (FolderError).
"""

import os
import pwd
import stat
from pathlib import Path

from rethink import RethinkError

# Opening never follows a link (ELOOP instead) and never blocks on a FIFO planted as a file.
_NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


class FolderError(RethinkError):
    """A folder or lock file another user made, or that is unsafe to use."""


def private_folder(path: Path, fix: str) -> Path:
    """`path` as a folder of this user's that no one else may enter: created with mode 0700
    (parents as umask allows), or an existing one of this user's narrowed to 0700; refused if it
    is a link, not a folder or another user's. `fix` ends the error line."""
    path = Path(path)
    fd, _ = _made_or_found(path, fix)
    try:
        info = os.fstat(fd)
        _check_owner(path, info, (os.getuid(),), fix)
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.fchmod(fd, 0o700)  # this user's own folder, held open: not a link swapped in
    finally:
        os.close(fd)
    return path


def shared_lock_folder(path: Path, fix: str) -> Path:
    """`path` as a folder where several users keep lock files: a real folder owned by root or
    by this user (so no one else can delete another's lock files) that, when others may write
    to it, has the sticky bit (as /tmp: each file can only be removed by its owner). Created as
    this user's, mode 1777, if missing."""
    path = Path(path)
    fd, created = _made_or_found(path, fix)
    try:
        info = os.fstat(fd)
        if created and info.st_uid == os.getuid():
            os.fchmod(fd, 0o1777)
            info = os.fstat(fd)
        _check_owner(path, info, (os.getuid(), 0), fix)
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o022 and not mode & stat.S_ISVTX:
            raise FolderError(
                f"{path} can be written by other users (mode {mode:04o}) without the sticky bit, "
                f"so any of them can delete your locks; {fix}"
            )
    finally:
        os.close(fd)
    return path


def open_lock_file(path: Path, fix: str, mode: int = 0o644) -> int:
    """A descriptor on the regular file `path` to flock, created if missing (a read-only
    descriptor is enough for an exclusive flock on a local filesystem, so another user's lock
    file works too); a link, FIFO or folder in its place is refused."""
    try:
        try:
            fd = os.open(path, _NO_FOLLOW | os.O_NONBLOCK | os.O_RDWR | os.O_CREAT, mode)
        except PermissionError:  # another user's lock file
            fd = os.open(path, _NO_FOLLOW | os.O_NONBLOCK | os.O_RDONLY)
    except OSError as err:
        raise FolderError(f"lock file {path} cannot be opened ({err.strerror}); {fix}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FolderError(f"lock file {path} is not a regular file; {fix}")
    return fd


def still_named(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open on `fd` (not removed or replaced since), the
    check that makes a held flock mean a held lock."""
    try:
        named = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _made_or_found(path: Path, fix: str) -> tuple[int, bool]:
    """A descriptor on the folder `path` (created with mode 0700 if missing, its parents as
    umask allows), and whether this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
        created = True
    except FileExistsError:
        created = False
    return _open_folder(path, fix), created


def _open_folder(path: Path, fix: str) -> int:
    try:
        return os.open(path, _NO_FOLLOW | os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        what = "a symbolic link" if os.path.islink(path) else f"unusable ({err.strerror})"
        raise FolderError(f"{path} is {what}, not a folder of yours; {fix}") from None


def _check_owner(path: Path, info: os.stat_result, allowed: tuple[int, ...], fix: str) -> None:
    if info.st_uid not in allowed:
        raise FolderError(f"{path} belongs to user {_user_name(info.st_uid)}, not you; {fix}")


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
