"""What training jobs ask a cluster for: wall time from model, dataset and attempt; memory
enough for the largest dataset, measured on a real run."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from rethink.config import ConfigError, load_study, run_table
from rethink.data.datasets import DATASETS
from rethink.data.h5io import ImageDataset, Split, write_dataset
from rethink.models import MODELS, ModelSpec
from rethink.training.settings import RunConfig
from rethink.workflow import resources as resources_module
from rethink.workflow.resources import (
    TrainingResources,
    array_rules,
    training_mem_mb,
    training_runtime_minutes,
)
from tests.conftest import REPO

CLUSTER = load_study(REPO / "config.yaml")["cluster"]


def test_runtime_grows_with_model_cost_epochs_images_and_attempt():
    cifar10, mnist5k = DATASETS["cifar10"], DATASETS["mnist5k"]
    inception = RunConfig("inception", max_epochs=200)
    # 10 + 6 minutes per million images x 200 epochs x 50,000 images
    assert training_runtime_minutes(inception, cifar10, CLUSTER) == 70
    assert training_runtime_minutes(inception, cifar10, CLUSTER, attempt=2) == 140
    assert training_runtime_minutes(RunConfig("mlp1x512", max_epochs=200), cifar10, CLUSTER) == 15
    subset = RunConfig("inception", max_epochs=200, train_subset=256)
    assert training_runtime_minutes(subset, cifar10, CLUSTER) == 11
    assert training_runtime_minutes(RunConfig("inception", max_epochs=200), mnist5k, CLUSTER) == 15
    own_rate = {**CLUSTER, "minutes_per_million_images": {"inception": 1}}
    assert training_runtime_minutes(inception, cifar10, own_rate) == 20


def test_memory_grows_with_the_dataset():
    # 4,000 MB + 12 bytes x 60,000 x 32 x 32 x 3 pixels
    assert training_mem_mb(DATASETS["cifar10"], CLUSTER) == 4000 + 2110
    assert training_mem_mb(DATASETS["mnist5k"], CLUSTER) == 4000 + 45


@pytest.mark.slow
def test_a_cifar10_sized_run_fits_in_the_memory_it_asks_for(tmp_path):
    """Float32 images (the gaussian variant's type: the largest files) of CIFAR-10's shape and
    count, one epoch of mlp1x512, peak resident memory of the whole process measured."""
    rng = np.random.default_rng(0)
    (train, test), shape = DATASETS["cifar10"].size, DATASETS["cifar10"].image_shape

    def split(n):
        return Split(rng.standard_normal((n, *shape), dtype=np.float32), rng.integers(0, 10, n))

    path = tmp_path / "gaussian.h5"
    write_dataset(path, ImageDataset(split(train), split(test), [str(i) for i in range(10)], {}))
    run = "\n".join([
        "import resource",
        "from rethink.training.loop import train_run",
        "from rethink.training.settings import RunConfig",
        f"train_run({str(path)!r}, {str(tmp_path / 'run')!r}, "
        "RunConfig('mlp1x512', max_epochs=1, device='cpu'))",
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",  # KiB on Linux
    ])  # fmt: skip
    child = subprocess.run(
        [sys.executable, "-c", run], check=True, capture_output=True, text=True, timeout=600
    )
    peak_mb = int(child.stdout.split()[-1]) / 1024
    asked_mb = training_mem_mb(DATASETS["cifar10"], CLUSTER)
    assert peak_mb < asked_mb, f"peak {peak_mb:.0f} MB, asked for {asked_mb} MB"
    print(f"peak {peak_mb:.0f} MB of the {asked_mb} MB asked for")


def test_the_workflow_profile_changes_nothing_the_slurm_profile_sets():
    """Snakemake reads profiles/default on every run, `--profile slurm` included, and its keys
    override the other profile's: so it holds only keys the SLURM profile does not set, and
    only the two that make reruns depend on content (docs/reruns.md)."""
    default = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    slurm = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert set(default) == {"max-checksum-file-size", "rerun-triggers", "scheduler"}
    assert not set(default) & set(slurm)
    assert "code" not in default["rerun-triggers"] and "mtime" in default["rerun-triggers"]


def wildcards(model="mlp1x512", variant="true", dataset="mnist5k", regularizer="none", seed="0"):
    return SimpleNamespace(
        dataset=dataset, variant=variant, model=model, regularizer=regularizer, seed=seed
    )


def resources(**training) -> TrainingResources:
    config = load_study(REPO / "config.yaml")
    config["training"].update(training)
    return TrainingResources(config)


def test_an_in_memory_run_takes_one_core_and_one_gpu():
    jobs, w = resources(), wildcards()
    assert (jobs.threads(w), jobs.gpus(w), jobs.nodes(w), jobs.mpi(w)) == (1, 1, None, None)
    assert jobs.slurm_extra(w) is None
    assert jobs.params(w) == jobs.run(w).determining_fields() and "threads" not in jobs.params(w)


def test_a_streamed_run_on_one_node_takes_a_core_per_process_and_loader_worker():
    jobs, w = resources(gpus_per_node=4, loader_workers=2, batch_size=128), wildcards()
    assert (jobs.threads(w), jobs.gpus(w), jobs.nodes(w), jobs.mpi(w)) == (12, 4, None, None)


def test_a_run_over_several_nodes_is_an_mpi_job_with_each_nodes_gpus():
    jobs, w = resources(nodes=2, gpus_per_node=8, batch_size=128), wildcards()
    assert (jobs.gpus(w), jobs.nodes(w), jobs.mpi(w)) == (None, 2, "srun")
    assert jobs.slurm_extra(w) == "--gpus-per-node=8"
    on_cpus = resources(nodes=2, gpus_per_node=8, batch_size=128, device="cpu")
    assert on_cpus.slurm_extra(w) is None  # gloo processes ask for no GPU


def test_slow_models_and_corrupted_variants_start_first(monkeypatch):
    monkeypatch.setitem(MODELS, "my-big-model", ModelSpec("m:M", 0.1, minutes_per_million_images=9))
    order = [
        wildcards("my-big-model"), wildcards("inception", "random"), wildcards("inception"),
        wildcards("alexnet", "corrupt0.4"), wildcards("alexnet"), wildcards("mlp1x512", "random"),
        wildcards("mlp1x512"),
    ]  # fmt: skip
    priorities = [TrainingResources.priority(w) for w in order]
    assert priorities == sorted(priorities, reverse=True) and len(set(priorities)) == len(order)


def test_a_runs_settings_are_built_once_for_all_its_resources(monkeypatch):
    built = []
    monkeypatch.setattr(
        resources_module, "run_config", lambda *args: built.append(args) or RunConfig("mlp1x512")
    )
    jobs, w = resources(), wildcards()
    jobs.threads(w), jobs.gpus(w), jobs.runtime(w, 1), jobs.mem_mb(w), jobs.params(w)
    assert len(built) == 1


def array_resources(study: dict, folder: Path) -> TrainingResources:
    """Resources of a study (the default one's keys, with `study`'s) sent out as arrays."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    training = config["training"] | study.get("training", {})
    (folder / "study.yaml").write_text(yaml.safe_dump(config | study | {"training": training}))
    config = load_study(folder / "study.yaml")
    return TrainingResources(config, run_table(config), in_arrays=lambda: True)


def test_runs_in_a_slurm_array_ask_for_the_longest_time_and_largest_memory_of_the_study(tmp_path):
    """The SLURM plugin gives an array's every task its first job's wall time and memory."""
    study = {
        "datasets": ["mnist5k", "cifar10"],
        "runs": [{"models": ["mlp1x512", "inception"], "variants": ["true"]}],
        "training": {"max_epochs": 200},
    }
    single, arrays = resources(max_epochs=200), array_resources(study, tmp_path)
    small, large = wildcards("mlp1x512"), wildcards("inception", dataset="cifar10")
    assert single.runtime(small, 1) < single.runtime(large, 1) == 70
    assert single.mem_mb(small) < single.mem_mb(large) == 6110
    for w in (small, large):
        assert (arrays.runtime(w, 1), arrays.runtime(w, 2), arrays.mem_mb(w)) == (70, 140, 6110)


def test_runs_that_need_other_gpus_cannot_share_an_array(tmp_path):
    study = {
        "runs": [{"models": ["mlp1x512", "mlp3x512"], "variants": ["true"]}],
        "training": {"models": {"mlp3x512": {"gpus_per_node": 2, "batch_size": 128}}},
    }
    message = r"^--slurm-array-jobs train_run: .* 1 CPU\(s\), 1 GPU\(s\), 1 node\(s\), run "
    with pytest.raises(ConfigError, match=message + r".*/mlp3x512/none/seed0 for 2 CPU\(s\), 2 GP"):
        array_resources(study, tmp_path).mem_mb(wildcards())
    study["training"]["models"]["mlp3x512"]["gpus_per_node"] = 1
    assert array_resources(study, tmp_path).mem_mb(wildcards()) > 4000


@pytest.mark.parametrize(
    ("setting", "rules"),
    [(None, set()), ("", set()), ("train_run", {"train_run"}),
     ("write_variant; train_run", {"write_variant", "train_run"}), ("all", {"all"})],
)  # fmt: skip
def test_the_array_rules_are_read_from_the_slurm_plugins_setting(setting, rules):
    assert array_rules(SimpleNamespace(array_jobs=setting)) == rules
    assert array_rules(None) == set()  # another executor's settings have no such field
