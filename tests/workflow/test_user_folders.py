"""GPU locks and MPS state among users of one machine: what another user planted in a shared
temporary folder is never followed, chmod'ed or written through, and a lock is taken only by
holding it. Two ordinary users, simulated by forked processes that switch uid (tests.users)."""

import fcntl
import os
import shutil
import stat
from pathlib import Path

import pytest

from rethink.workflow.gpus import claimed_gpus, slot_lock_name
from rethink.workflow.mps import start_mps
from rethink.workflow.user_folders import FolderError, open_lock_file, still_named
from tests.users import OTHER, VICTIM, as_user, needs_root, running_as, shared_tmp
from tests.workflow.test_gpus import fake_mps_control, fake_nvidia_smi, fake_uuid


@pytest.fixture
def machine(monkeypatch):
    """A shared /tmp-like folder, a fake nvidia-smi listing 2 GPUs, and the environment of a
    job of either user there; each user has a private home with one file."""
    needs_root()
    tmp = shared_tmp()
    path = fake_nvidia_smi(tmp / "bin", 2)
    (tmp / "bin").chmod(0o755)
    homes = {}
    for uid in (VICTIM, OTHER):
        home = tmp / f"home-{uid}"
        home.mkdir(mode=0o700)
        (home / "notes.txt").write_text("mine\n")
        os.chown(home, uid, uid)
        os.chown(home / "notes.txt", uid, uid)
        homes[uid] = home
    env = {"TMPDIR": str(tmp), "PATH": path}
    for name in ("RETHINK_GPU_LOCK_DIR", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    yield tmp, homes, env
    shutil.rmtree(tmp)


def claim(count: int = 1) -> str:
    with claimed_gpus(count) as gpus:
        return gpus


def keep_claim():
    claimed = claimed_gpus()
    claimed.__enter__()
    return claimed


def default_locks(tmp: Path) -> Path:
    return tmp / f"rethink-gpu-locks-{VICTIM}"


def test_a_link_planted_as_the_lock_folder_is_refused_and_its_target_left_alone(machine):
    tmp, homes, env = machine
    as_user(OTHER, os.symlink, str(homes[VICTIM]), str(default_locks(tmp)))
    with pytest.raises(FolderError) as refused:
        as_user(VICTIM, claim, env=env)
    message = str(refused.value)
    assert "\n" not in message and "is a symbolic link" in message
    assert str(default_locks(tmp)) in message and "RETHINK_GPU_LOCK_DIR" in message
    assert stat.S_IMODE(homes[VICTIM].stat().st_mode) == 0o700  # not made world-writable
    assert sorted(p.name for p in homes[VICTIM].iterdir()) == ["notes.txt"]
    # the same as the shared folder a user names
    shared = tmp / "team-locks"
    as_user(OTHER, os.symlink, str(homes[VICTIM]), str(shared))
    with pytest.raises(FolderError, match="is a symbolic link"):
        as_user(VICTIM, claim, env=env | {"RETHINK_GPU_LOCK_DIR": str(shared)})
    assert stat.S_IMODE(homes[VICTIM].stat().st_mode) == 0o700


def test_a_folder_another_user_made_in_its_place_is_one_line(machine):
    tmp, _, env = machine
    as_user(OTHER, os.mkdir, str(default_locks(tmp)), 0o755)
    with pytest.raises(FolderError) as refused:
        as_user(VICTIM, claim, env=env)
    message = str(refused.value)
    assert "\n" not in message and f"belongs to user uid {OTHER}, not you" in message
    assert str(default_locks(tmp)) in message and "RETHINK_GPU_LOCK_DIR" in message


def test_the_own_lock_folder_is_private(machine):
    tmp, _, env = machine
    assert as_user(VICTIM, claim, env=env) == "0"
    info = default_locks(tmp).stat()
    assert info.st_uid == VICTIM and stat.S_IMODE(info.st_mode) == 0o700


@pytest.fixture
def team(machine):
    """A folder root made for the users' shared locks, as /tmp: mode 1777."""
    tmp, homes, env = machine
    team = tmp / "team-locks"
    team.mkdir()
    team.chmod(0o1777)
    return team, homes, env | {"RETHINK_GPU_LOCK_DIR": str(team)}


def test_in_a_shared_folder_a_lock_is_taken_only_by_holding_it(team):
    locks, _, env = team
    first = locks / slot_lock_name(fake_uuid(0), 0)
    with running_as(VICTIM, keep_claim, env=env):  # the victim holds GPU 0 ...
        assert first.stat().st_uid == VICTIM
        with pytest.raises(PermissionError):  # ... and no one else can remove its lock file
            as_user(OTHER, os.unlink, str(first))
        assert as_user(OTHER, claim, env=env) == "1"
    assert as_user(OTHER, claim, env=env) == "0"  # released with the victim's process

    second = locks / slot_lock_name(fake_uuid(1), 0)
    as_user(OTHER, lambda: second.touch(mode=0o644))  # a lock file nobody holds claims nothing

    def hold(path: Path):
        handle = path.open("rb")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    with running_as(OTHER, hold, first):  # held by the other user, in the victim's file
        assert as_user(VICTIM, claim, env=env) == "1"


def test_a_lock_file_planted_as_a_link_or_fifo_is_refused_and_nothing_written_through(team):
    locks, homes, env = team
    first = locks / slot_lock_name(fake_uuid(0), 0)
    target = homes[OTHER] / "victim-would-create"
    homes[OTHER].chmod(0o777)  # a place the victim could write, if it followed the link
    as_user(OTHER, os.symlink, str(target), str(first))
    with pytest.raises(FolderError) as refused:
        as_user(VICTIM, claim, env=env)
    assert "\n" not in str(refused.value) and str(first) in str(refused.value)
    assert not target.exists()
    as_user(OTHER, os.unlink, str(first))
    as_user(OTHER, os.mkfifo, str(first))  # opening it blocks a reader without O_NONBLOCK
    with pytest.raises(FolderError, match="is not a regular file"):
        as_user(VICTIM, claim, env=env)


@pytest.mark.parametrize(
    ("owner", "mode", "message"),
    [(OTHER, 0o1777, f"belongs to user uid {OTHER}"), (0, 0o777, "without the sticky bit")],
)
def test_a_shared_folder_others_could_empty_is_refused(machine, owner, mode, message):
    """Another user's folder (its owner may delete any file in it, sticky or not), or one
    without the sticky bit, would let someone remove the victim's locks."""
    tmp, _, env = machine
    shared = tmp / "team-locks"
    shared.mkdir()
    os.chown(shared, owner, owner)
    shared.chmod(mode)
    with pytest.raises(FolderError, match=message):
        as_user(VICTIM, claim, env=env | {"RETHINK_GPU_LOCK_DIR": str(shared)})


def test_an_mps_folder_another_user_made_is_refused(machine):
    """A pre-created rethink-mps-{uid} would point the victim's jobs at the other user's MPS
    daemon (its pipe); the victim starts none there."""
    tmp, homes, env = machine
    record = tmp / "mps.txt"
    fake_mps_control(tmp / "bin", record)
    folder = tmp / f"rethink-mps-{VICTIM}"
    as_user(OTHER, os.makedirs, str(folder / "pipe"), 0o777)
    with pytest.raises(FolderError, match=f"belongs to user uid {OTHER}"):
        as_user(VICTIM, start_mps, env=env)
    as_user(OTHER, lambda: os.system(f"rm -r {folder}"))
    as_user(OTHER, os.symlink, str(homes[OTHER]), str(folder))
    with pytest.raises(FolderError, match="is a symbolic link"):
        as_user(VICTIM, start_mps, env=env)
    assert not record.exists()  # no daemon was started or asked
    as_user(OTHER, os.unlink, str(folder))
    assert as_user(VICTIM, start_mps, env=env) is True
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.stat().st_uid == VICTIM


def test_a_lock_file_removed_or_replaced_after_opening_is_not_the_lock(tmp_path):
    """A flock on a file that no longer has the name claims nothing: the next job would create
    a new file under the name and take it too."""
    path = tmp_path / "gpu.lock"
    fd = open_lock_file(path, "fix")
    try:
        assert still_named(fd, path)
        path.unlink()
        assert not still_named(fd, path)
        path.touch()  # another file under the name
        assert not still_named(fd, path)
    finally:
        os.close(fd)
