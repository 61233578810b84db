"""What `rule all` asks for, from a study's config and its planned runs, without Snakemake."""

import copy

from rethink.config import load_study, run_table
from rethink.results.catalog import KERNEL_FIGURE, Plan, drawable_figures
from rethink.workflow.targets import docs_figures, docs_tables, final_outputs, run_files
from tests.conftest import REPO

DEFAULT = load_study(REPO / "config.yaml")


def figures_of(outputs: list[str], dataset: str) -> set[str]:
    prefix = f"results/figures/{dataset}/"
    return {o[len(prefix) :].rsplit(".", 1)[0] for o in outputs if o.startswith(prefix)}


def test_the_default_study_asks_for_every_variant_run_figure_and_table():
    runs = run_table(DEFAULT)
    outputs = final_outputs(DEFAULT, runs)
    assert len(outputs) == len(set(outputs))
    names = DEFAULT["variants"]["names"]
    assert {f"results/variants/mnist5k/{v}.h5" for v in names} <= set(outputs)
    assert {"results/theory/mnist5k.csv", "results/kernels/mnist5k.csv"} <= set(outputs)
    assert "results/tables/runs.csv" in outputs
    plan = Plan(runs, critical_measured=True)
    expected = {
        KERNEL_FIGURE,
        *drawable_figures(plan, "runs"),
        *drawable_figures(plan, "memorization"),
        *drawable_figures(plan, "measures"),
    }
    assert figures_of(outputs, "mnist5k") == expected
    assert {"measures-vs-gap", "margin-distributions"} <= expected
    for ext in ("png", "pdf", "csv"):
        assert f"results/figures/mnist5k/fig1a.{ext}" in outputs
    tables = "results/tables/mnist5k"
    assert {f"{tables}/table1.{e}" for e in ("csv", "md", "tex")} <= set(outputs)
    assert {f"{tables}/consistency.md", f"{tables}/critical-samples.csv"} <= set(outputs)
    assert {f"{tables}/measure-ranking.{e}" for e in ("csv", "md")} <= set(outputs)
    assert not any("table2" in o for o in outputs)


def test_without_the_measures_no_measure_output_is_asked_for():
    config = copy.deepcopy(DEFAULT)
    config["measures"]["enabled"] = False
    runs = run_table(config)
    outputs = final_outputs(config, runs)
    assert not any("measure" in o or "margin" in o for o in outputs)
    assert "margin-distributions" not in docs_figures(config, runs)
    assert list(docs_tables(config)) == ["table1"]
    assert list(docs_tables(DEFAULT)) == ["table1", "measures"]


def test_without_runs_only_the_data_and_the_theory_are_asked_for():
    config = copy.deepcopy(DEFAULT)
    outputs = final_outputs(config, run_table(config).iloc[:0])
    data_and_theory = ("results/variants/", "results/theory/", "results/kernels/")
    kernel_figure = f"results/figures/mnist5k/{KERNEL_FIGURE}."
    assert all(o.startswith((*data_and_theory, kernel_figure)) for o in outputs)


def test_a_jpeg_dataset_gets_table2_and_no_theory():
    config = load_study(REPO / "studies" / "imagenet.yaml")
    outputs = final_outputs(config, run_table(config))
    assert {f"results/tables/imagenet/table2.{e}" for e in ("csv", "md", "tex")} <= set(outputs)
    assert not any(o.startswith(("results/theory/", "results/kernels/")) for o in outputs)
    assert not any("table1" in o for o in outputs)
    assert figures_of(outputs, "imagenet") == {"fig1a", "fig2a", "random-labels-regularizers"}


def test_without_per_example_records_no_memorization_output_is_asked_for():
    config = copy.deepcopy(DEFAULT)
    config["training"]["record_examples"] = False
    config["measures"]["enabled"] = False
    for model in config["training"]["models"].values():
        model.pop("critical_examples", None)
    runs = run_table(config)
    outputs = final_outputs(config, runs)
    assert not any("memorization" in o or "consistency" in o for o in outputs)
    assert docs_figures(config, runs) == ["fig1a", "fig1b", "fig1c", "fig2a"]
    assert docs_figures(DEFAULT, run_table(DEFAULT))[4:] == [
        *drawable_figures(Plan(run_table(DEFAULT), critical_measured=True), "memorization"),
        "margin-distributions",
    ]


def test_run_files_name_each_runs_folder():
    runs = run_table(DEFAULT)
    files = run_files(runs.iloc[:1], "summary.json")
    row = runs.iloc[0]
    assert files == [
        f"results/runs/{row.dataset}/{row.variant}/{row.model}/{row.regularizer}/"
        f"seed{row.seed}/summary.json"
    ]
    assert len(run_files(runs, "history.csv")) == len(runs)
