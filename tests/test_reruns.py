"""After a complete run, Snakemake schedules exactly the jobs an edit invalidated.

Each test takes its own copy of one finished tiny study, together with the workflow and the
package (imported from the copy through PYTHONPATH), edits one thing and dry-runs.
"""

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_workflow, run_snakemake

pytestmark = pytest.mark.slow

STUDY = {
    "datasets": ["mnist5k"],
    "variants": {"names": ["true", "random", "random-pixels"]},
    "runs": [
        {"models": ["mlp1x512", "mlp3x512"], "variants": ["true", "random"]},
        {"models": ["mlp1x512"], "variants": ["random-pixels"]},
    ],
    "training": {
        "max_epochs": 2, "train_subset": 256, "test_subset": 256, "record_examples": True,
    },
}  # fmt: skip


def snakemake(root: Path, *args: str) -> subprocess.CompletedProcess:
    result = run_snakemake(root, *args, repo=root)  # this copy's rethink, not the installed one
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def scheduled(root: Path) -> tuple[Counter, list[str]]:
    """Jobs a dry run would run, per rule, and the outputs they would write."""
    out = snakemake(root, "--dry-run").stdout
    rules = Counter(re.findall(r"^(?:local)?rule (\w+):$", out, flags=re.M))
    rules.pop("all", None)
    outputs = [p for line in re.findall(r"^\s+output: (.*)$", out, re.M) for p in line.split(", ")]
    return rules, outputs


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = copy_workflow(tmp_path_factory.mktemp("finished"), STUDY)
    snakemake(root, "--cores", "2")
    assert scheduled(root) == (Counter(), [])
    return root


@pytest.fixture
def study(finished, tmp_path) -> Path:
    """A private copy of the finished study, modification times and Snakemake records kept."""
    root = tmp_path / "study"
    shutil.copytree(finished, root, symlinks=True)
    return root


def edit_config(root: Path, change) -> None:
    config = yaml.safe_load((root / "config.yaml").read_text())
    change(config)
    (root / "config.yaml").write_text(yaml.safe_dump(config))


def append_line(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(f"\n{line}\n")


DOWNSTREAM = {"aggregate_runs": 1, "write_table1": 1, "memorization_tables": 1}
# the paper's figures, the kernel figure, and the memorization figures
FIGURE_RULES = {"plot_figure", "kernel_report", "plot_memorization_figure"}


def test_nothing_changed_schedules_nothing_even_after_touching_the_config(study):
    (study / "config.yaml").touch()
    assert scheduled(study) == (Counter(), [])


def test_one_models_learning_rate_reruns_that_models_runs_and_their_aggregates(study):
    edit_config(study, lambda c: c["training"].setdefault("models", {}).update(
        {"mlp3x512": {"lr": 0.02}}
    ))  # fmt: skip
    rules, outputs = scheduled(study)
    assert rules["train_run"] == 2 and rules["write_variant"] == 0
    trained = {p.split("/")[4] for p in outputs if p.startswith("results/runs/")}
    assert trained == {"mlp3x512"}
    assert rules["aggregate_runs"] == 1 and rules["plot_figure"] >= 1


def test_a_figure_option_reruns_only_the_figures(study):
    edit_config(study, lambda c: c.setdefault("figures", {}).update({"dpi": 100}))
    rules, _ = scheduled(study)
    assert set(rules) == FIGURE_RULES


def test_one_variants_seed_reruns_that_variant_and_what_descends_from_it(study):
    edit_config(study, lambda c: c["variants"].update({"seeds": {"random": 1}}))
    rules, outputs = scheduled(study)
    assert rules["write_variant"] == 1 and "results/variants/mnist5k/random.h5" in outputs
    assert rules["write_dataset"] == 0
    trained = {p.split("/")[3] for p in outputs if p.startswith("results/runs/")}
    assert trained == {"random"} and rules["train_run"] == 2


EDIT = "EDITED = True"  # a statement: a change to what the code runs


def test_editing_a_script_reruns_the_jobs_that_ran_it(study):
    append_line(study / "scripts" / "write_paper_table.py", EDIT)
    rules, _ = scheduled(study)
    assert rules == Counter({"write_table1": 1})


def test_comments_docstrings_and_formatting_rerun_nothing(study):
    loop = study / "rethink/training/loop.py"
    text = loop.read_text()
    docstring = '"""One training run, as in'
    assert docstring in text and "log = logging.getLogger(__name__)" in text
    loop.write_text(
        text.replace(docstring, '"""A training run, reworded, as in').replace(
            "log = logging.getLogger(__name__)", "log = (\n    logging.getLogger(__name__)\n)"
        )
        + "\n# a comment\n"
    )
    append_line(study / "scripts/train_run.py", "# and one here")
    assert scheduled(study) == (Counter(), [])


@pytest.mark.parametrize(
    "module, expected",
    [
        ("rethink/results/figures.py", FIGURE_RULES),
        ("rethink/results/table1.py", {"write_table1"}),
        ("rethink/theory/kernels.py", {"kernel_fit", "kernel_report"}),
        ("rethink/theory/theorem1.py", {"theorem1"}),
        (
            "rethink/data/variants.py",
            {"write_variant", "train_run", *DOWNSTREAM, *FIGURE_RULES, "kernel_fit", "theorem1"},
        ),
        (
            "rethink/models/mlp.py",
            {"train_run", *DOWNSTREAM, "plot_figure", "plot_memorization_figure"},
        ),
        (
            "rethink/training/loop.py",
            {"train_run", *DOWNSTREAM, "plot_figure", "plot_memorization_figure"},
        ),
        ("rethink/models/alexnet.py", set()),  # no AlexNet run in this study
    ],
)
def test_editing_an_imported_module_reruns_the_jobs_that_import_it(study, module, expected):
    append_line(study / module, EDIT)
    rules, _ = scheduled(study)
    assert set(rules) == expected
    assert rules.get("write_dataset", 0) == 0
    if "train_run" in expected:  # every run of this study is an MLP: all of them
        assert rules["train_run"] == 5


def test_editing_one_models_entry_reruns_that_models_runs_only(study):
    registry = study / "rethink/models/__init__.py"
    entry = '"rethink.models.mlp:MLP", 0.01, {"n_hidden": 3}'
    assert entry in registry.read_text()
    registry.write_text(
        registry.read_text().replace(entry, entry.replace("3}", "3, 'width': 512}"))
    )
    rules, outputs = scheduled(study)
    assert rules["train_run"] == 2
    assert {p.split("/")[4] for p in outputs if p.startswith("results/runs/")} == {"mlp3x512"}


def test_registering_a_model_a_corruption_and_a_dataset_reruns_nothing(study):
    append_line(
        study / "rethink/models/__init__.py",
        'MODELS["mlp2x512"] = ModelSpec("rethink.models.mlp:MLP", 0.01, {"n_hidden": 2})',
    )
    append_line(
        study / "rethink/data/variants.py",
        "def inverted_halves(train, test, rng):\n    return train[:, ::-1], test[:, ::-1]\n\n\n"
        'PIXEL_CORRUPTIONS["flipped"] = inverted_halves',
    )
    append_line(
        study / "rethink/data/datasets.py",
        "def load_tiny(archive_paths, options):\n    raise NotImplementedError\n\n\n"
        'DATASETS["tiny"] = DatasetSource((8, 8, 1), (100, 50), archives=(), load=load_tiny)',
    )
    assert scheduled(study) == (Counter(), [])


# Snakemake's own limit on the files whose content it compares, unless a profile raises it.
SNAKEMAKE_CHECKSUM_LIMIT = 1_000_000
LARGE = ["results/datasets/mnist5k.h5", "results/variants/mnist5k/random-pixels.h5"]


def test_the_dataset_and_pixel_variants_are_larger_than_snakemakes_checksum_limit(study):
    for path in LARGE:
        assert (study / path).stat().st_size > 3 * SNAKEMAKE_CHECKSUM_LIMIT, path


def test_touching_every_result_and_source_file_schedules_nothing(study):
    files = [p for p in study.rglob("*") if p.is_file() and ".snakemake" not in p.parts]
    assert len([p for p in files if p.parts[len(study.parts)] == "results"]) > 40
    for path in sorted(files, reverse=True):  # inputs end up newer than the outputs
        os.utime(path)
    assert scheduled(study) == (Counter(), [])


def test_a_copy_of_the_checkout_that_drops_modification_times_schedules_nothing(study, tmp_path):
    copy = tmp_path / "elsewhere"
    subprocess.run(["cp", "-r", str(study), str(copy)], check=True)  # no -p: times are now
    assert (copy / LARGE[0]).stat().st_mtime > (copy / "results/tables/runs.csv").stat().st_mtime
    assert scheduled(copy) == (Counter(), [])


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
        capture_output=True,
    )  # fmt: skip


def test_git_checkouts_that_leave_the_code_as_it_was_schedule_nothing(study):
    (study / ".gitignore").write_text("/results/\n/logs/\n/.snakemake/\n")
    (study / "NOTES.md").write_text("first\n")
    git(study, "init", "-q", "-b", "main")
    git(study, "add", "-A")
    git(study, "commit", "-q", "-m", "study")
    git(study, "checkout", "-q", "-b", "notes")  # a branch that differs in an unrelated file
    (study / "NOTES.md").write_text("second\n")
    git(study, "commit", "-q", "-am", "notes")
    git(study, "checkout", "-q", "main")
    for path in ("rethink/results/figures.py", "scripts/plot_figure.py"):
        append_line(study / path, "# tried something")
        git(study, "checkout", "--", path)  # and took it back
    assert scheduled(study) == (Counter(), [])


def test_a_real_change_to_a_large_dataset_reruns_what_descends_from_it(study):
    import h5py

    with h5py.File(study / LARGE[0], "r+") as f:  # one test label changes, size the same
        f["test/labels"][0] = (f["test/labels"][0] + 1) % 10
    rules, outputs = scheduled(study)
    assert rules["write_dataset"] == 0 and rules["write_variant"] == 3
    assert rules["train_run"] == 5 and rules["aggregate_runs"] == 1
