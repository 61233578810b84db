"""Atomic outputs: flushed to disk before they are renamed into place, and temporary files of
dead processes removed."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rethink import files
from rethink.files import atomic_path, remove_stale_parts, write_together


@pytest.fixture
def disk(monkeypatch):
    """What reaches the disk, in order: ("fsync", path) and ("rename", path)."""
    events = []
    fsync, replace = os.fsync, os.replace

    def record_fsync(fd):
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}"))))
        fsync(fd)

    def record_replace(src, dst):
        replace(src, dst)
        events.append(("rename", Path(dst)))

    monkeypatch.setattr(files.os, "fsync", record_fsync)
    monkeypatch.setattr(files.os, "replace", record_replace)
    return events


def test_a_file_is_on_disk_before_its_name_and_the_name_after(tmp_path, disk):
    """Without the first fsync a power loss can leave the name pointing at an empty file, which
    Snakemake would count as finished; without the second, the rename itself can be lost."""
    path = tmp_path / "out" / "table.csv"
    with atomic_path(path) as tmp:
        tmp.write_text("a,b\n1,2\n")
    assert path.read_text() == "a,b\n1,2\n"
    assert disk == [("fsync", tmp), ("rename", path), ("fsync", path.parent)]


def test_files_written_together_are_all_on_disk_before_any_is_renamed(tmp_path, disk):
    paths = [tmp_path / "a" / "history.csv", tmp_path / "b" / "summary.json"]
    write_together({p: (lambda tmp, p=p: tmp.write_text(p.name)) for p in paths})
    kinds = [kind for kind, _ in disk]
    assert kinds == ["fsync", "fsync", "rename", "rename", "fsync", "fsync"]
    assert [p for kind, p in disk if kind == "rename"] == paths
    assert [p for _, p in disk[-2:]] == [paths[0].parent, paths[1].parent]


def dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True)  # fmt: skip
    return int(child.stdout)


def test_temporary_files_of_dead_processes_of_this_host_are_removed(tmp_path):
    host = socket.gethostname()
    dead, alive = dead_pid(), os.getppid()
    stale = tmp_path / f".checkpoint.pt.{dead}@{host}.part"
    live = tmp_path / f".checkpoint.pt.{alive}@{host}.part"  # a writer still at work
    elsewhere = tmp_path / f".checkpoint.pt.{dead}@another-node.part"  # a shared filesystem
    other_name = tmp_path / f".examples.h5.{dead}@{host}.part"
    kept = tmp_path / "checkpoint.pt"
    for path in (stale, live, elsewhere, other_name, kept):
        path.write_text("x")
    assert remove_stale_parts(tmp_path, "checkpoint.pt") == [stale]
    assert remove_stale_parts(tmp_path) == [other_name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, elsewhere, kept)
    )


def test_writing_a_file_again_removes_its_stale_temporary(tmp_path):
    stale = tmp_path / f".runs.csv.{dead_pid()}@{socket.gethostname()}.part"
    stale.write_text("half a table")
    with atomic_path(tmp_path / "runs.csv") as tmp:
        tmp.write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv"]
