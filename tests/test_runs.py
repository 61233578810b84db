"""A run's identity: its folder from its keys and its keys from its folder, the one pattern the
workflow's outputs, logs and benchmark records and the result tables all follow."""

import pytest

from rethink.config import load_study, run_table
from rethink.runs import RUN_FIELDS, RunKey
from rethink.workflow.targets import run_files


def test_a_key_gives_its_folder_and_is_read_back_from_it_under_any_root():
    key = RunKey("cifar10", "corrupt0.4", "inception-nobn", "crop+wd", 12)
    assert key.path() == "results/runs/cifar10/corrupt0.4/inception-nobn/crop+wd/seed12"
    assert RunKey.from_path(key.path()) == key
    assert RunKey.from_path(f"/scratch/me/{key.path('logs/runs')}") == key
    assert RunKey.from_path(key.path()).seed == 12  # a number, not text


@pytest.mark.parametrize(
    "folder", ["results/runs/mnist5k/true/mlp1x512/none", "r/mnist5k/true/mlp/none/seedx",
               "r/mnist5k/true/mlp/none/seed", "r/mnist5k/true/mlp/none/seed-1"],
)  # fmt: skip
def test_a_folder_that_is_not_a_run_is_refused_with_the_pattern(folder):
    with pytest.raises(ValueError, match=r"not a run folder \(…/\{dataset\}/.*seed\{seed\}\)"):
        RunKey.from_path(folder)


def test_the_planned_runs_files_are_the_keys_folders():
    runs = run_table(load_study("config.yaml"))
    assert list(runs.columns) == RUN_FIELDS
    files = run_files(runs, "summary.json")
    assert [RunKey.from_path(f.removesuffix("/summary.json")) for f in files] == [
        RunKey(**row) for row in runs.to_dict("records")
    ]
