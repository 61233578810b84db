"""`snakemake --profile slurm` on a real one-node SLURM cluster on localhost.

The profile is installed with the README's own line, read from README.md, into a private config
directory; the study then runs twice, on SLURM with exactly the README's `snakemake --profile
slurm` in a checkout (only the partition and account changed in the installed profile, to the
test cluster's) and locally with `--cores`, and both must give the same bytes and numbers. One
training run is made to outlast its time limit: SLURM kills it, Snakemake resubmits it with more
time, and it resumes from its checkpoint to the uninterrupted run's results.
"""

import json
import os
import re
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rethink.data.datasets import build_dataset
from rethink.data.h5io import read_dataset
from rethink.data.variants import make_variant
from tests.conftest import REPO, copy_workflow, run_snakemake
from tests.slurm_cluster import local_slurm_cluster, missing_programs

MISSING = missing_programs()
pytestmark = [
    pytest.mark.slow,
    # CI installs the cluster (.ci/run) and must never skip this; elsewhere it may be absent.
    pytest.mark.skipif(
        bool(MISSING or os.geteuid()) and not os.environ.get("CI"),
        reason=f"needs root and Debian's SLURM, munge and MariaDB (missing: {MISSING})",
    ),
]

LONG_RUN = "results/runs/mnist5k/random/mlp3x512/none/seed0"
STUDY = {
    "datasets": ["mnist5k"],
    "variants": {"names": ["true", "random"]},
    "runs": [
        {"models": ["mlp1x512"], "variants": ["true", "random"]},
        {"models": ["mlp3x512"], "variants": ["random"]},
    ],
    "training": {
        "device": "cpu",  # the two sides are compared number for number: both on the CPU
        "max_epochs": 60,
        "lr_decay_steps": 32,  # 0.95 an epoch of 4,000 digits: the lengths below assume it
        # mlp3x512 never fits at this rate: it trains all its epochs, ~160 s on one core of
        # an AMD EPYC in fp32 (bf16 would be 2.7x faster), and so outlasts its first
        # 1-minute time limit on a CPU twice as fast. An attempt that ends training just
        # before its limit and is killed before Snakemake registers it resumes too.
        "models": {"mlp3x512": {"lr": 0.0005, "max_epochs": 300, "precision": "fp32"}},
        # Every epoch: on a machine busy with other tests, a first attempt that trains at all
        # in its minute leaves a checkpoint (changes no number: a runtime-only key).
        "checkpoint_every": 1,
    },
    # A 1-minute limit on the first attempt of every training job, 2 on the second, ...
    "cluster": {"minutes_base": 1, "minutes_per_million_images": {"mlp1x512": 0, "mlp3x512": 0}},
}


def slurm_array_command() -> str:
    """The README's line for many short runs: training jobs as SLURM job arrays."""
    return re.search(r"`(snakemake --profile slurm --slurm-array-jobs \S+)`", readme())[1]


def readme() -> str:
    return (REPO / "README.md").read_text()


def slurm_recipe() -> list[str]:
    """The command lines of the README's SLURM recipe, in order."""
    block = re.search(r"<!-- slurm:start -->\n```\n(.*?)```\n<!-- slurm:end -->", readme(), re.S)
    return [line for line in block[1].splitlines() if line.strip()]


def install_profile(cluster, config_home: Path) -> Path:
    """Run the README's install line as written, in the checkout, then set the partition and
    account in the installed copy as the README tells a user to; return the copy's config."""
    pip, install, run = slurm_recipe()
    assert pip == "pip install -e '.[slurm]'"  # this environment has the extra already
    env = os.environ | {"XDG_CONFIG_HOME": str(config_home)}
    subprocess.run(["bash", "-euo", "pipefail", "-c", install], cwd=REPO, env=env, check=True)
    installed = config_home / "snakemake" / "slurm" / "config.yaml"
    assert installed.read_text() == (REPO / "profiles/slurm/config.yaml").read_text()
    profile = yaml.safe_load(installed.read_text())
    profile["default-resources"] |= {
        "slurm_partition": cluster.partition,
        "slurm_account": cluster.account,
    }
    # Speed only: poll job states every 5 s rather than after 40 s, then every 10 s.
    profile |= {"slurm-init-seconds-before-status-checks": 5, "seconds-between-status-checks": 5}
    installed.write_text(yaml.safe_dump(profile))
    return installed


def run_locally(root: Path, study: dict = STUDY, cores: int = 1) -> None:
    root.mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump(study))
    result = run_snakemake(root, "--cores", str(cores), timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]


def run_on_slurm(root: Path, env: dict) -> str:
    """The README's last line, exactly as typed, in a checkout of the workflow."""
    command = slurm_recipe()[-1]
    assert command == "snakemake --profile slurm"
    copy_workflow(root, STUDY)
    result = run_snakemake(root, *shlex.split(command)[1:], timeout=900, repo=root, env=env)
    assert result.returncode == 0, result.stderr[-5000:]
    assert re.search(
        r"Using profiles? slurm and workflow specific profile profiles/default", result.stderr
    )
    return result.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The study run on SLURM and, at the same time, locally: (local folder, SLURM folder,
    SLURM's Snakemake output, SLURM's accounting records)."""
    tmp = tmp_path_factory.mktemp("slurm")
    local, slurm = tmp / "local", tmp / "study"
    with ThreadPoolExecutor(1) as pool:  # the SLURM run mostly waits: share the CPUs
        local_run = pool.submit(run_locally, local)
        with local_slurm_cluster(tmp / "cluster", memory_mb=20000) as cluster:
            install_profile(cluster, tmp / "config")
            output = run_on_slurm(slurm, cluster.env | {"XDG_CONFIG_HOME": str(tmp / "config")})
            jobs = cluster.accounted_jobs()
        local_run.result()
    return local, slurm, output, jobs


def finished_files(root: Path) -> list[Path]:
    return sorted(
        p.relative_to(root)
        for p in (root / "results").rglob("*")
        if p.is_file() and "benchmarks" not in p.parts
    )


def run_numbers(run_dir: Path) -> tuple:
    """A run's results without what legitimately differs: wall time and the GPU it was given."""
    history = pd.read_csv(run_dir / "history.csv").drop(columns="seconds")
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("seconds", "cuda_visible_devices"):
        summary.pop(key)
    return history, pd.read_csv(run_dir / "steps.csv"), summary


def test_slurm_runs_the_study_through_sbatch_with_the_local_results(runs):
    local, slurm, output, jobs = runs
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", output)
    by_id = {job["JobID"]: job for job in jobs}
    # Every job but the local rules (downloads, aggregation, figures, tables) went through sbatch
    # and SLURM's accounting knows it by the id Snakemake logged.
    rules = [by_id[i]["Comment"].split("_wildcards_")[0] for i in submitted]
    assert sorted(set(rules)) == [
        "rule_kernel_fit", "rule_theorem1", "rule_train_run", "rule_write_dataset",
        "rule_write_variant",
    ]  # fmt: skip
    assert rules.count("rule_train_run") >= 3
    assert all(by_id[i]["State"] in ("COMPLETED", "TIMEOUT") for i in submitted)
    assert "localrule aggregate_runs:" in output and "localrule plot_figure:" in output

    assert finished_files(slurm) == finished_files(local)
    for variant in ("true", "random"):  # same config and seeds: the same HDF5 bytes
        path = f"results/variants/mnist5k/{variant}.h5"
        assert (slurm / path).read_bytes() == (local / path).read_bytes()
    for summary in (slurm / "results/runs").rglob("summary.json"):
        run_dir = summary.parent.relative_to(slurm)
        slurm_numbers, local_numbers = run_numbers(slurm / run_dir), run_numbers(local / run_dir)
        pd.testing.assert_frame_equal(slurm_numbers[0], local_numbers[0])
        pd.testing.assert_frame_equal(slurm_numbers[1], local_numbers[1])
        assert slurm_numbers[2] == local_numbers[2]
        # SLURM gave the job one of the node's two (fake) GPUs; locally there are none.
        assert json.loads(summary.read_text())["cuda_visible_devices"] in ("0", "1")
    differing = ["seconds", "cuda_visible_devices"]
    pd.testing.assert_frame_equal(
        pd.read_csv(slurm / "results/tables/runs.csv").drop(columns=differing),
        pd.read_csv(local / "results/tables/runs.csv").drop(columns=differing),
    )
    check_against_independent_anchors(slurm)


def check_against_independent_anchors(root: Path) -> None:
    """Facts computed here, outside both workflows, so that a bug the two runs share fails:
    the variants' labels as the package draws them in this process, the protocol's
    arithmetic, and what the paper says the runs must show."""
    dataset = build_dataset("mnist5k", [], {"seed": 0, "test_per_class": 100})
    for name in ("true", "random"):
        stored = read_dataset(root / f"results/variants/mnist5k/{name}.h5")
        drawn = make_variant(dataset, name, seed=0)
        np.testing.assert_array_equal(stored.train.labels, drawn.train.labels)
        np.testing.assert_array_equal(stored.train.images, dataset.train.images)
    runs = pd.read_csv(root / "results/tables/runs.csv")
    assert sorted(zip(runs.variant, runs.model, strict=True)) == [
        ("random", "mlp1x512"), ("random", "mlp3x512"), ("true", "mlp1x512")
    ]  # fmt: skip
    for run in runs.itertuples():
        history = pd.read_csv(
            root / "results/runs/mnist5k" / run.variant / run.model / "none/seed0/history.csv"
        )
        epochs = np.arange(1, len(history) + 1)
        lr = 0.0005 if run.model == "mlp3x512" else 0.01
        np.testing.assert_allclose(history.lr, lr * 0.95 ** (epochs - 1))  # 0.95 an epoch
        assert history.step.tolist() == (32 * epochs).tolist()  # 4,000 images, batch 128
    by_variant = runs[runs.model == "mlp1x512"].set_index("variant")
    # True labels are learned and generalize; random ones are memorized (60 epochs at this
    # decay reach 81%, where chance is 10%) and do not.
    assert by_variant.train_acc["true"] > 0.95 and by_variant.test_acc["true"] > 0.85
    assert by_variant.train_acc["random"] > 0.5 and by_variant.test_acc["random"] < 0.2


def test_a_run_killed_at_its_time_limit_resumes_from_its_checkpoint(runs):
    local, slurm, output, jobs = runs
    long_run = [job for job in jobs if job["Comment"].endswith("_mlp3x512_none_0")]
    # SLURM ended the first attempt at its 1-minute limit; each resubmission had a minute more
    # (on a busy machine the second may time out too), until one completed.
    states = [job["State"] for job in long_run]
    assert len(states) >= 2 and set(states[:-1]) == {"TIMEOUT"} and states[-1] == "COMPLETED"
    assert [job["Timelimit"] for job in long_run] == [
        f"00:0{k}:00" for k in range(1, len(states) + 1)
    ]
    log = (slurm / "logs/runs/mnist5k/random/mlp3x512/none/seed0.log").read_text()
    resumed = re.search(r"resuming after epoch (\d+)", log)
    assert resumed and int(resumed[1]) >= 1, attempts_report(slurm, long_run, log)

    history, steps, summary = run_numbers(slurm / LONG_RUN)
    assert summary["epochs"] == 300 and not summary["fitted"]
    local_history, local_steps, local_summary = run_numbers(local / LONG_RUN)
    pd.testing.assert_frame_equal(history, local_history)
    pd.testing.assert_frame_equal(steps, local_steps)
    assert summary == local_summary
    assert not (slurm / LONG_RUN / "checkpoint.pt").exists()  # removed once the run finished


def attempts_report(root: Path, attempts: list[dict], run_log: str) -> str:
    """Each SLURM attempt of a run: its state, and the job log the SLURM plugin keeps of a
    failed job (the job's Snakemake and the trainer's warnings); then the last attempt's run
    log (Snakemake removes a job's log before a rerun). Progress bars left out."""
    report = []
    for job in attempts:
        report.append(f"job {job['JobID']}: {job['State']} after {job['Elapsed']}")
        for path in (root / ".snakemake/slurm_logs").rglob(f"{job['JobID']}.log"):
            lines = path.read_text(errors="replace").replace("\r", "\n").splitlines()
            report += [line for line in lines if "epoch/s" not in line]
    report += [line for line in run_log.replace("\r", "\n").splitlines() if "epoch/s" not in line]
    return "\n".join(report)


def test_the_cluster_daemons_are_stopped_after_the_study(runs):
    for daemon in ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd"):
        assert subprocess.run(["pgrep", "-x", daemon]).returncode == 1, f"{daemon} still runs"


DISTRIBUTED_RUN = "results/runs/mnist5k/true/mlp1x512/none/seed0"


def distributed_study(nodes: int, gpus_per_node: int) -> dict:
    return {
        "datasets": ["mnist5k"],
        "variants": {"names": ["true"]},
        "runs": [{"models": ["mlp1x512"]}],
        "training": {
            "device": "cpu", "precision": "fp32", "max_epochs": 3, "record_examples": False,
            "train_subset": 2048, "test_subset": 500, "nodes": nodes,
            "gpus_per_node": gpus_per_node,
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def distributed(tmp_path_factory):
    """One run on two processes: as a 2-task job through the slurm profile (training.nodes: 2,
    the one-node cluster standing in for two nodes), and locally with torchrun (one node, two
    processes). Returns (local run, SLURM run, SLURM's Snakemake output)."""
    tmp = tmp_path_factory.mktemp("distributed")
    local, slurm = tmp / "local", tmp / "study"
    copy_workflow(local, distributed_study(nodes=1, gpus_per_node=2))
    result = run_snakemake(local, "--cores", "2", repo=local, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    with local_slurm_cluster(tmp / "cluster", memory_mb=20000) as cluster:
        installed = install_profile(cluster, tmp / "config")
        profile = yaml.safe_load(installed.read_text())
        # The test cluster has one node: both of the job's tasks (its "nodes") go there.
        profile["set-resources"] = {"train_run": {"nodes": 1}}
        installed.write_text(yaml.safe_dump(profile))
        copy_workflow(slurm, distributed_study(nodes=2, gpus_per_node=1))
        env = cluster.env | {"XDG_CONFIG_HOME": str(tmp / "config")}
        result = run_snakemake(slurm, "--profile", "slurm", timeout=900, repo=slurm, env=env)
        assert result.returncode == 0, result.stderr[-5000:]
    return local, slurm, result.stderr


def test_a_two_task_distributed_job_through_the_profile_equals_a_local_run(distributed):
    local_study, slurm_study, output = distributed
    log = (slurm_study / "logs/runs/mnist5k/true/mlp1x512/none/seed0.log").read_text()
    local, slurm = local_study / DISTRIBUTED_RUN, slurm_study / DISTRIBUTED_RUN
    assert "starting 2 processes: srun --ntasks=2" in log  # srun + torchrun, one per task
    assert "on 2 process(es)" in log and "rank 0" in log
    assert "--ntasks=2" in output or "tasks=2" in output
    for name in ("history.csv", "steps.csv"):
        ours, theirs = pd.read_csv(slurm / name), pd.read_csv(local / name)
        pd.testing.assert_frame_equal(
            ours.drop(columns="seconds", errors="ignore"),
            theirs.drop(columns="seconds", errors="ignore"),
            check_exact=False, rtol=1e-6,
        )  # fmt: skip
    summary = json.loads((slurm / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["epochs"] == 3


# Eight short runs that become ready together (one variant), of two models with different wall
# times: 1 minute for mlp1x512, 1 + 500 x 2 epochs x 4,000 images / 10^6 = 5 for mlp3x512.
ARRAY_STUDY = {
    "datasets": ["mnist5k"],
    "variants": {"names": ["true"]},
    "runs": [{"models": ["mlp1x512", "mlp3x512"], "seeds": [0, 1, 2, 3]}],
    "training": {"device": "cpu", "max_epochs": 2, "record_examples": False},
    "cluster": {"minutes_base": 1, "minutes_per_million_images": {"mlp1x512": 0, "mlp3x512": 500}},
}


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    """ARRAY_STUDY with the README's array line on SLURM and, at the same time, locally:
    (local folder, SLURM folder, SLURM's Snakemake output, SLURM's accounting records)."""
    tmp = tmp_path_factory.mktemp("arrays")
    local, slurm = tmp / "local", tmp / "study"
    with ThreadPoolExecutor(1) as pool:
        local_run = pool.submit(run_locally, local, ARRAY_STUDY, 1)
        with local_slurm_cluster(tmp / "cluster", memory_mb=20000) as cluster:
            install_profile(cluster, tmp / "config")
            copy_workflow(slurm, ARRAY_STUDY)
            env = cluster.env | {"XDG_CONFIG_HOME": str(tmp / "config")}
            args = shlex.split(slurm_array_command())[1:]
            result = run_snakemake(slurm, *args, timeout=900, repo=slurm, env=env)
            assert result.returncode == 0, result.stderr[-5000:]
            jobs = cluster.accounted_jobs()
        local_run.result()
    return local, slurm, result.stderr, jobs


def test_many_short_runs_go_out_as_one_job_array_with_the_local_results(arrays):
    local, slurm, output, jobs = arrays
    submitted = re.findall(r"array job with Snakemake IDs (\S+) and SLURM job ID (\d+)", output)
    assert len(submitted) == 1 and len(submitted[0][0].split(",")) == 8, output[-3000:]
    tasks = [job for job in jobs if job["JobID"].startswith(f"{submitted[0][1]}_")]
    assert sorted(job["JobID"] for job in tasks) == [f"{submitted[0][1]}_{i}" for i in range(1, 9)]
    assert all(job["State"] == "COMPLETED" for job in tasks)
    # Every task has the study's longest wall time (mlp3x512's), whichever run it trains.
    assert {job["Timelimit"] for job in tasks} == {"00:05:00"}
    assert finished_files(slurm) == finished_files(local)
    summaries = sorted((slurm / "results/runs").rglob("summary.json"))
    assert len(summaries) == 8
    for summary in summaries:
        run_dir = summary.parent.relative_to(slurm)
        ours, theirs = run_numbers(slurm / run_dir), run_numbers(local / run_dir)
        pd.testing.assert_frame_equal(ours[0], theirs[0])
        pd.testing.assert_frame_equal(ours[1], theirs[1])
        assert ours[2] == theirs[2] and ours[2]["epochs"] == 2
