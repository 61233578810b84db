"""The benchmark scripts users run on their machines: the GPU check (at its CPU size, with only
its four requirements importable), the study estimate from its JSON, the precision comparison."""

import json
import math
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, copy_workflow

sys.path.insert(0, str(REPO / "benchmarks"))
from precision_fidelity import compare, per_model  # noqa: E402

# What gpu_check must not need: the pipeline's other dependencies.
NOT_NEEDED = ["snakemake", "seaborn", "matplotlib", "mlxtend", "scipy", "jsonschema", "tqdm"]
RUN_WITHOUT = """
import runpy, sys
for name in {blocked!r}:
    sys.modules[name] = None  # `import name` fails
sys.argv = ["gpu_check.py", *{args!r}]
sys.path.insert(0, {folder!r})  # as `python benchmarks/gpu_check.py` does
runpy.run_path({script!r}, run_name="__main__")
"""


@pytest.fixture(scope="module")
def gpu_check(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    code = RUN_WITHOUT.format(
        blocked=NOT_NEEDED, args=["--small", "--device", "cpu", "--json", str(out)],
        script=str(REPO / "benchmarks" / "gpu_check.py"), folder=str(REPO / "benchmarks"),
    )  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=out.parent, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


@pytest.mark.slow
def test_gpu_check_measures_every_part_with_torch_numpy_h5py_and_pandas_only(gpu_check):
    report, printed = gpu_check
    throughput = pd.DataFrame(report["throughput"])
    eager = throughput[~throughput.compiled]
    measured = set(zip(eager.model, eager.precision, strict=True))
    # every model of the paper's CIFAR-10 size, a user's own too, in both CPU precisions (tf32
    # is CUDA's only)
    paper = ["mlp1x512", "mlp3x512", "alexnet", "inception", "inception-nobn"]
    assert {(m, p) for m in paper for p in ["fp32", "bf16"]} <= measured
    assert measured == {(m, p) for m, _ in measured for p in ["fp32", "bf16"]}
    compiled = throughput[throughput.compiled]
    # both precisions compiled, but for any its time budget left out (a loaded machine: beside
    # the default study, both were), named
    left_out = report["throughput_skipped"]
    assert set(compiled.model) <= {"mlp1x512"} and len(compiled) + len(left_out) == 2
    assert all(name.startswith("mlp1x512 ") and name.endswith(" compiled") for name in left_out)
    assert (throughput.train_images_per_s > 0).all() and (throughput.eval_images_per_s > 0).all()
    concurrency = pd.DataFrame(report["concurrency"])
    assert list(concurrency.runs) == [1, 2] and not concurrency.mps.any()  # no MPS on a CPU
    assert concurrency.vs_one_run.iloc[0] == 1 and (concurrency.total_images_per_s > 0).all()
    fit = report["fit_random_labels"]
    best_inception = eager[eager.model == "inception"].nlargest(1, "train_images_per_s")
    assert fit["precision"] == best_inception.precision.iloc[0] and fit["epochs"] >= 1
    runs = pd.DataFrame(report["pipeline_runs"])
    assert len(runs) == 4 and runs.fitted.all() and runs.outputs.all()
    for part in ("a) training", "b) concurrent", "c) Inception", "d) pipeline runs",
                 "e) Inception V3, 299x299, TF's recipe"):  # fmt: skip
        assert part in printed
    imagenet = throughput[throughput.model == "inception-v3"]
    assert set(imagenet.precision) == {"fp32", "bf16"} and set(imagenet.recipe) == {"tf-inception"}


def test_the_gpu_checks_recipe_is_the_imagenet_studys():
    """Part e) times what studies/imagenet.yaml runs: every key of its recipe as the study."""
    from gpu_check import TF_RECIPE

    training = yaml.safe_load((REPO / "studies" / "imagenet.yaml").read_text())["training"]
    assert {key: training[key] for key in TF_RECIPE} == TF_RECIPE


def study_duration_row(report: dict, dataset: str, tmp_path) -> tuple[str, list[str]]:
    """study_duration.py on the study of `dataset` (studies/{dataset}.yaml) from gpu_check's
    `report`: its output, and its row for the dataset, split."""
    (tmp_path / "check.json").write_text(json.dumps(report))
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "study_duration.py"), "--configfile",
         str(REPO / "studies" / f"{dataset}.yaml"), "--gpu-check", str(tmp_path / "check.json")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    row = next(line.split() for line in result.stdout.splitlines() if line.startswith(dataset))
    return result.stdout, row


@pytest.mark.slow
def test_study_duration_uses_the_gpu_checks_measurements(gpu_check, tmp_path):
    report, _ = gpu_check
    stdout, row = study_duration_row(report, "cifar10", tmp_path)
    assert f"measured by gpu_check on {report['device_name']}" in stdout
    # mlp1x512 on CIFAR-10 (bf16 on this CPU, auto): 10 runs? read the row and recompute
    rate = pd.DataFrame(report["throughput"])
    mlp = rate[(rate.model == row[1]) & (rate.precision == "bf16") & ~rate.compiled].iloc[0]
    epoch_s = math.ceil(50_000 / 128) * 128 / mlp.train_images_per_s + (
        60_000 / mlp.eval_images_per_s
    )
    assert float(row[-3]) == pytest.approx(epoch_s, rel=1e-3, abs=1e-3)


@pytest.mark.slow
def test_study_duration_prices_table2_from_the_recipes_measurement(gpu_check, tmp_path):
    """The ImageNet study from part e): its global batch of 256 at the measured rate, and the
    50,000 training and 50,000 test images evaluated with the weights and their average."""
    report, _ = gpu_check
    _, row = study_duration_row(report, "imagenet", tmp_path)
    rate = pd.DataFrame(report["throughput"])
    v3 = rate[(rate.model == "inception-v3") & (rate.precision == "bf16")].iloc[0]
    epoch_s = math.ceil(1_281_167 / 256) * 256 / v3.train_images_per_s + (
        100_000 / v3.eval_images_per_s
    )
    assert row[2] == "7" and float(row[-3]) == pytest.approx(epoch_s, rel=1e-3)


def test_precision_fidelity_compares_run_by_run():
    keys = dict(dataset="mnist5k", p=0.0, model="mlp1x512", regularizer="none", seed=0)
    first = pd.DataFrame([
        dict(keys, variant="true", fitted=True, test_acc=0.9, steps_to_fit=100, seconds=10),
        dict(keys, variant="random", fitted=True, test_acc=0.1, steps_to_fit=400, seconds=4),
    ])  # fmt: skip
    second = first.assign(
        fitted=[True, False], test_acc=[0.92, 0.11], steps_to_fit=[110, None], seconds=[5, 30]
    )
    runs = compare(first, second, ("fp32", "bf16"))
    true = runs[runs.variant == "true"].iloc[0]
    assert true.test_acc_diff == pytest.approx(0.02) and true.steps_to_fit_ratio == 1.1
    assert true.seconds_ratio == 0.5
    summary = per_model(runs, ("fp32", "bf16")).loc["mlp1x512"]
    assert summary["fitted fp32"] == 2 and summary["fitted bf16"] == 1
    with pytest.raises(SystemExit, match="different runs"):
        compare(first, second.iloc[:1], ("fp32", "bf16"))


def test_the_imagenet_input_benchmark_prints_conversion_decoding_and_cores_per_gpu():
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "imagenet_input.py"), "--images", "20",
         "--size", "96", "128", "--workers", "0", "--gpu-images-per-s", "1000"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert (
        "a) conversion of 30 images of 96x128" in out
    )  # 20 train, 10 val (a class each) and "MB per 1,000 images" in out
    rate = float(next(line.split()[1] for line in out.splitlines() if "augment  " in line))
    cores = float(re.search(r"needs ([0-9.]+) cores", out)[1])
    # the rate is printed rounded to 0.1 image/s: the cores it implies are known to that much
    assert 1000 / (rate + 0.05) - 0.05 <= cores <= 1000 / (rate - 0.05) + 0.05


def test_the_planning_benchmark_prints_seconds_and_peak_memory_per_study(tmp_path):
    checkout = copy_workflow(
        tmp_path / "checkout", yaml.safe_load(REPO.joinpath("config.yaml").read_text())
    )
    study = tmp_path / "study.yaml"
    study.write_text("datasets: [mnist5k]\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "plan_time.py"), str(REPO / "config.yaml"),
         str(study), "--checkout", str(checkout), "--repeats", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"checkout {checkout}; median of 1 runs")
    for line, configfile in zip(lines[1:], (REPO / "config.yaml", study), strict=True):
        match = re.fullmatch(rf"{re.escape(str(configfile))}: ([0-9.]+) s, peak (\d+) MB", line)
        assert match and float(match[1]) > 0 and 50 < int(match[2]) < 4000, line
