"""The Snakemake workflow as users run it: config checks, the DAG, and real runs on mnist5k."""

import re
import shutil
from collections import Counter

import pytest
import yaml

from rethink.models import MODELS
from rethink.results.catalog import Plan, drawable_figures, figures_reading
from tests.conftest import REPO, run_snakemake


def dry_run(tmp_path, config: dict | None = None):
    configfile = tmp_path / "study.yaml"
    if config is None:
        shutil.copy(REPO / "config.yaml", configfile)
    else:
        configfile.write_text(yaml.safe_dump(config))
    return run_snakemake(tmp_path, "--dry-run", "--configfile", str(configfile))


def job_stats(dry_run_output: str) -> dict[str, str]:
    """The 'Job stats' table of a dry run: rule name -> job count."""
    table = dry_run_output.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return {row[0]: row[1] for row in rows if len(row) == 2 and row[0] not in ("all", "total")}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"variant": {}}, "config key 'variant' is unknown; did you mean 'variants'?"),
        ({"data": {"sed": 1}}, "config key 'data.sed' is unknown; did you mean 'seed'?"),
        ({"data": {"seed": "zero"}}, "config key 'data.seed': 'zero' is not of type 'integer'"),
        ({"variants": {"corrupt_test_labels": "no"}}, "'variants.corrupt_test_labels'"),
        ({"datasets": ["cifar100"]}, "config key 'datasets': unknown dataset 'cifar100'"),
        ({"variants": {"names": ["shufled-pixels"]}}, "unknown variant 'shufled-pixels'"),
        ({"variants": {"names": ["corrupt1.5"]}}, "p = 1.5 is outside [0, 1]"),
        ({"variants": {"names": ["corrupt-0.2"]}}, "unknown variant 'corrupt-0.2'"),
        ({"variants": {"names": ["true"], "seeds": {"random": 1}}}, "'variants.seeds'"),
        ({"runs": [{"seeds": [0]}]}, "config key 'runs[0]': 'models' is a required property"),
        (
            {"runs": [{"models": ["mlp1x521"]}]},
            "unknown model 'mlp1x521'; did you mean 'mlp1x512'?",
        ),
        (
            {"runs": [{"models": ["mlp1x512"], "regularizers": ["crop+wdd"]}]},
            "config key 'runs[0].regularizers': unknown regularizer 'wdd'",
        ),
        (
            {"runs": [{"models": ["mlp1x512"], "regularizers": ["crop+dropout1.5"]}]},
            "'runs[0].regularizers': regularizer 'dropout1.5' in 'crop+dropout1.5': dropout "
            "strength '1.5' is not a number in [0, 1); write e.g. dropout0.25",
        ),
        (
            {"runs": [{"models": ["alexnet"]}], "training": {"crop_size": 32}},
            "'training.crop_size': 32 exceeds the 28x28 images of 'mnist5k'",
        ),
        (
            {
                "variants": {"names": ["true"]},
                "runs": [{"models": ["alexnet"], "variants": ["random"]}],
            },
            "'runs[0].variants': 'random' is not in 'variants.names'",
        ),
        ({"training": {"models": {"incepton": {"lr": 0.05}}}}, "unknown model 'incepton'"),
        (
            {"training": {"models": {"inception": {"learning_rate": 0.05}}}},
            "config key 'training.models.inception.learning_rate' is unknown",
        ),
        (
            {"training": {"regularizers": {"crop+wdd": {"max_epochs": 60}}}},
            "config key 'training.regularizers': unknown regularizer 'wdd'",
        ),
        (
            {"training": {"regularizers": {"crop+wd": {"stop_when_fited": False}}}},
            "config key 'training.regularizers.crop+wd.stop_when_fited' is unknown",
        ),
        ({"training": {"device": "gpu"}}, "config key 'training.device': 'gpu' does not match"),
        (
            {"training": {"record_examples": False, "critical_examples": 50}},
            "config key 'training.critical_examples': 50 critical samples need "
            "training.record_examples: true",
        ),
        (
            {"cluster": {"minutes_per_million_images": {"alexnett": 2}}},
            "config key 'cluster.minutes_per_million_images': unknown model 'alexnett'",
        ),
        ({"cluster": {"mem_mb_base": "4G"}}, "'cluster.mem_mb_base': '4G' is not of type"),
        ({"training": {"precision": "fp16"}}, "config key 'training.precision': 'fp16' is not"),
        (
            {"training": {"device": "cpu", "models": {"alexnet": {"precision": "tf32"}}}},
            "config key 'training.models.alexnet.precision': tf32 needs a CUDA GPU and "
            "training.device is cpu",
        ),
        ({"gpus": {"jobs_per_gpu": 0}}, "config key 'gpus.jobs_per_gpu': 0 is less than"),
        (
            {"runs": [{"models": ["mlp1x512"]}], "training": {"aux_loss_weight": 0.4}},
            "config key 'training.aux_loss_weight': model 'mlp1x512' has no auxiliary head "
            "(models with one: inception-v3)",
        ),
        ({"training": {"optimizer": "adam"}}, "config key 'training.optimizer': 'adam' is not"),
        ({"training": {"weight_decay_on": "bias"}}, "'training.weight_decay_on': 'bias' is not"),
        (
            {"training": {"device": "cpu", "jpeg_decoder": "nvjpeg"}},
            "config key 'training.jpeg_decoder': nvjpeg decodes on a CUDA GPU and "
            "training.device is cpu",
        ),
        # Values JSON schema lets through: NaN passes every bound, 1500.0 counts as an integer,
        # and `\d` matches every script's digits.
        ({"training": {"lr": float("nan")}}, "config key 'training.lr': nan is not a finite"),
        ({"training": {"lr": float("inf")}}, "config key 'training.lr': inf is not a finite"),
        ({"kernels": {"gamma": float("nan")}}, "config key 'kernels.gamma': nan is not a finite"),
        (
            {"cluster": {"minutes_base": float("nan")}},
            "config key 'cluster.minutes_base': nan is not a finite",
        ),
        (
            {"runs": [{"models": ["mlp1x512"], "seeds": [1500.0]}]},
            "config key 'runs[0].seeds[0]': 1500.0 is not an integer",
        ),
        (
            {"runs": [{"models": ["mlp1x512"], "seeds": [1e30]}]},
            "config key 'runs[0].seeds[0]': 1e+30 is greater than the maximum",
        ),
        (
            {"runs": [{"models": ["mlp1x512"], "seeds": [2**63]}]},
            "'runs[0].seeds[0]': 9223372036854775808 is greater than the maximum",
        ),
        ({"training": {"max_epochs": 10.0}}, "'training.max_epochs': 10.0 is not an integer"),
        (
            {"variants": {"names": ["corrupt\u0660.\u0665"]}},
            "unknown variant 'corrupt\u0660.\u0665'",
        ),
        (
            {"runs": [{"models": ["mlp1x512"], "regularizers": ["wd\u0661"]}]},
            "'runs[0].regularizers': unknown regularizer 'wd\u0661'",
        ),
    ],
)
def test_bad_config_stops_before_any_job_and_names_the_key(tmp_path, config, message):
    result = dry_run(tmp_path, config)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert "Job stats" not in result.stdout


def test_defaults_fill_in_a_minimal_config(tmp_path):
    result = dry_run(tmp_path, {"datasets": ["mnist5k"]})
    assert result.returncode == 0, result.stderr
    assert "results/variants/mnist5k/true.h5" in result.stdout


def test_dry_run_of_the_default_study_lists_data_and_corrupt_jobs(tmp_path):
    result = dry_run(tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    names = config["variants"]["names"]
    for name in names:
        assert f"results/variants/mnist5k/{name}.h5" in result.stdout
    stats = job_stats(result.stdout)
    assert stats["write_dataset"] == "1" and stats["write_variant"] == str(len(names))
    assert stats["theorem1"] == "1" and "results/theory/mnist5k.csv" in result.stdout


def test_default_study_is_in_the_papers_regime_with_seeds_where_readme_draws_conclusions():
    from rethink.config import load_study, run_config, run_table
    from rethink.results.aggregate import MIN_SEEDS_FOR_INTERVAL
    from rethink.results.rademacher import rademacher_runs
    from rethink.results.table1 import table1_runs

    config = load_study(REPO / "config.yaml")
    runs = run_table(config)
    # Every model on true and random labels, on all 4,000 training and 1,000 test digits, at
    # the paper's learning rate and decay (0.95 per 391 steps)
    assert set(table1_runs(runs).model) == {"mlp1x512", "mlp3x512", "alexnet-quarter"}
    for model, variants in runs.groupby("model").variant:
        assert {"true", "random"} <= set(variants), model
        settings = run_config(config, model, "none", 0)
        assert settings.train_subset is settings.test_subset is None
        assert (settings.lr_decay, settings.lr_decay_steps) == (0.95, 391)
        assert settings.lr == MODELS[model].lr  # the paper's (AlexNet 0.01)
    # Every figure but Fig. 2b (Inception with and without batch norm: studies/cifar10.yaml)
    plan = Plan(runs, critical_measured=True)
    assert drawable_figures(plan, "runs") == [f for f in figures_reading("runs") if f != "fig2b"]
    assert drawable_figures(plan, "memorization") == figures_reading("memorization")
    assert set(runs.variant) == set(config["variants"]["names"])
    # README's conclusions rest on mlp1x512: its Table 1 cells and Fig. 1b-c's p = 0, 0.4, 0.8, 1
    mlp = runs[runs.model == "mlp1x512"]
    seeds = mlp.groupby(["variant", "regularizer"]).seed.nunique()
    for cell in [("true", "none"), ("random", "none"), ("true", "wd"), ("random", "wd"),
                 ("corrupt0.4", "none"), ("corrupt0.8", "none")]:  # fmt: skip
        assert seeds[cell] >= MIN_SEEDS_FOR_INTERVAL, cell
    sweep = mlp[mlp.variant == "corrupt0.4"].regularizer
    assert {"none", "dropout0.25", "dropout0.5"} <= set(sweep)
    assert rademacher_runs(runs).variant.nunique() >= 3  # the Rademacher table's draws


def test_run_grid_and_per_model_and_per_regularizer_overrides(tmp_path):
    from rethink.config import run_config, run_table

    config = {
        "runs": [
            {"datasets": ["mnist5k"], "variants": ["true", "random"], "models": ["mlp1x512"],
             "regularizers": ["none"], "seeds": [0, 1]},
            {"datasets": ["mnist5k"], "variants": ["true"], "models": ["mlp1x512", "inception"],
             "regularizers": ["none", "wd"], "seeds": [0]},
        ],
        "training": {"lr": None, "max_epochs": 7, "models": {"inception": {"max_epochs": 3}},
                     "regularizers": {"wd": {"max_epochs": 5, "stop_when_fitted": False}}},
    }  # fmt: skip
    table = run_table(config)
    assert len(table) == 4 + 4 - 1  # the (true, mlp1x512, none, 0) run appears in both grids
    assert list(table.columns) == ["dataset", "variant", "model", "regularizer", "seed"]
    mlp, inception = (
        run_config(config, "mlp1x512", "none", 0),
        run_config(config, "inception", "wd", 0),
    )
    assert (mlp.lr, mlp.max_epochs, mlp.stop_when_fitted) == (0.01, 7, True)
    # the regularizer's overrides come last: a regime for every run under it
    assert (inception.lr, inception.max_epochs, inception.regularizer) == (0.1, 5, "wd")
    assert not inception.stop_when_fitted


def test_cifar10_study_lists_the_papers_grid(tmp_path):
    study = REPO / "studies" / "cifar10.yaml"
    shutil.copy(REPO / "config.yaml", tmp_path)  # run where the default study is, as users do
    result = run_snakemake(tmp_path, "--dry-run", "--configfile", str(study))
    assert result.returncode == 0, result.stderr
    assert "resources/archives/cifar-10-python.tar.gz" in result.stdout
    stats = job_stats(result.stdout)
    # Fig. 1a-c, the 19 rows of Table 1 and random labels under regularizers: 40 distinct runs,
    # then every figure of the paper and Table 1.
    assert stats == {
        "download_archive": "1", "write_dataset": "1", "write_variant": "9", "train_run": "40",
        "aggregate_runs": "1", "plot_figure": str(len(figures_reading("runs"))),
        "write_table1": "1",
        "theorem1": "1", "kernel_fit": "6", "kernel_report": "1",  # the 6 label variants
        # every run records its examples: the tables, and the two figures without a sweep or
        # critical samples (memorization-order, forgetting)
        "memorization_tables": "1", "plot_memorization_figure": "2",
        # the measures: one job per variant, their ranking and two figures
        "measure_runs": "9", "measure_tables": "1", "plot_measure_figure": "2",
    }  # fmt: skip
    assert "results/runs/cifar10/random/alexnet/wd/seed0/summary.json" in result.stdout
    # The study alone decides: config.yaml's CNN settings for mnist5k (256 training images) do
    # not leak in. Cluster minutes: 10 + 6 per million images x 200 epochs x 50,000 images
    # for Inception (5.5 without batch norm, 1.5 AlexNet, 0.8 and 0.5 the MLPs).
    runtimes = Counter(re.findall(r"resources: (?=.*gpu=1).*runtime=(\d+)", result.stdout))
    assert runtimes == {"70": 15, "65": 3, "25": 10, "18": 4, "15": 8}
    assert "results/runs/cifar10/true/inception/crop+wd/seed0/summary.json" in result.stdout


@pytest.mark.slow
def test_default_study_data_stages_are_reproducible_byte_for_byte(tmp_path):
    outputs = []
    for run in ("a", "b"):
        workdir = tmp_path / run
        workdir.mkdir()
        shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
        result = run_snakemake(workdir, "--cores", "2", "--until", "write_variant")
        assert result.returncode == 0, result.stderr
        outputs.append(sorted((workdir / "results").rglob("*.h5")))
    a, b = outputs
    assert [p.relative_to(tmp_path / "a") for p in a] == [p.relative_to(tmp_path / "b") for p in b]
    variants = yaml.safe_load((REPO / "config.yaml").read_text())["variants"]["names"]
    assert len(a) == 1 + len(variants)
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes(), x
    assert (tmp_path / "a" / "logs" / "variants" / "mnist5k" / "random.log").exists()


@pytest.mark.slow
def test_a_truncated_input_fails_the_job_with_one_clear_line(tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    assert run_snakemake(tmp_path, "--cores", "1", "results/datasets/mnist5k.h5").returncode == 0
    dataset = tmp_path / "results" / "datasets" / "mnist5k.h5"
    dataset.write_bytes(dataset.read_bytes()[:50_000])
    target = "results/variants/mnist5k/random.h5"
    result = run_snakemake(tmp_path, "--cores", "1", "--force", target)
    assert result.returncode != 0
    log = (tmp_path / "logs" / "variants" / "mnist5k" / "random.log").read_text()
    assert log.count("\n") == 1 and "Traceback" not in log
    assert "results/datasets/mnist5k.h5: not a readable HDF5 file (truncated file" in log
    assert "delete it and rerun snakemake" in log
    assert not (tmp_path / target).exists()
