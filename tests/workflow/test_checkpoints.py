"""Finished runs' checkpoints, removed when the workflow ends."""

import copy
import fcntl
import os
from pathlib import Path

from rethink.config import load_study, run_table
from rethink.workflow.checkpoints import checkpointed_runs, remove_finished_checkpoints
from tests.conftest import REPO

DEFAULT = load_study(REPO / "config.yaml")


def run_folder(root, name, *files):
    folder = root / name
    folder.mkdir()
    for file in files:
        (folder / file).write_text("x")
    return folder


def test_only_finished_runs_that_nothing_trains_lose_their_checkpoint(tmp_path):
    finished = run_folder(tmp_path, "finished", "checkpoint.pt", "summary.json")
    training = run_folder(tmp_path, "training", "checkpoint.pt")  # or killed: resumes
    locked = run_folder(tmp_path, "locked", "checkpoint.pt", "summary.json")
    holder = os.open(locked, os.O_RDONLY | os.O_DIRECTORY)  # as a trainer holds it
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        removed = remove_finished_checkpoints([finished, training, locked, tmp_path / "none"])
    finally:
        os.close(holder)
    assert removed == [finished / "checkpoint.pt"]
    assert not (finished / "checkpoint.pt").exists() and (finished / "summary.json").exists()
    assert (training / "checkpoint.pt").exists() and (locked / "checkpoint.pt").exists()


def test_a_folder_that_cannot_be_changed_is_skipped(tmp_path, monkeypatch):
    """As another user's folder in a shared results/ would be: the others are still cleaned."""
    shared = run_folder(tmp_path, "shared", "checkpoint.pt", "summary.json")
    own = run_folder(tmp_path, "own", "checkpoint.pt", "summary.json")
    unlink = Path.unlink

    def refused(path, missing_ok=False):
        if path.parent == shared:
            raise PermissionError(13, "Permission denied", str(path))
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refused)
    assert remove_finished_checkpoints([shared, own]) == [own / "checkpoint.pt"]
    assert (shared / "checkpoint.pt").exists()


def test_runs_that_keep_their_checkpoint_are_left_alone():
    study = copy.deepcopy(DEFAULT)
    runs = run_table(study)
    assert len(checkpointed_runs(study, runs)) == len(runs)
    model = runs.model.iloc[0]
    study["training"]["models"].setdefault(model, {})["keep_checkpoint"] = True
    kept = checkpointed_runs(study, runs)
    assert len(kept) == (runs.model != model).sum() and not any(f"/{model}/" in f for f in kept)
    assert kept[0].startswith("results/runs/")
