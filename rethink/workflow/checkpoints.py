"""Checkpoints of finished runs, removed when the workflow ends.

A training job keeps its run's checkpoint after writing the run's outputs: until Snakemake has
registered the job as finished, a kill (a cluster's time limit a few seconds after training
ended) makes Snakemake delete those outputs, and the rerun resumes from the checkpoint instead
of starting over. Once the workflow ends, with success or not, a run whose summary.json
Snakemake kept is finished and its checkpoint goes, unless `training.keep_checkpoint`.
"""

from pathlib import Path

import pandas as pd

from rethink.config import run_config
from rethink.runs import CHECKPOINT_FILE, RunKey
from rethink.training.run_lock import RunBusyError, run_folder_lock


def checkpointed_runs(config: dict, runs: pd.DataFrame) -> list[str]:
    """The folders of the planned `runs` whose checkpoint goes once they finish: all but those
    with `keep_checkpoint` (study-wide or for their model)."""
    kept = [m for m in runs.model.unique() if run_config(config, m, "none", 0).keep_checkpoint]
    return [RunKey(**row).path() for row in runs[~runs.model.isin(kept)].to_dict("records")]


def remove_finished_checkpoints(run_dirs) -> list[Path]:
    """Remove the checkpoint of each run in `run_dirs` that has its summary.json; a run that
    some process trains (its folder locked), or whose folder this user may not change, keeps
    it. Return the removed paths."""
    removed = []
    for run_dir in map(Path, run_dirs):
        checkpoint = run_dir / CHECKPOINT_FILE
        if not (checkpoint.exists() and (run_dir / "summary.json").exists()):
            continue
        try:
            with run_folder_lock(run_dir, wait_s=0):
                checkpoint.unlink(missing_ok=True)
                removed.append(checkpoint)
        except (RunBusyError, OSError):  # a cache left behind never fails a finished workflow
            continue
    return removed
