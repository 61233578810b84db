"""What a study's `rule all` asks for, and what the docs rule copies: every file its config
implies, from the config and the table of its planned runs alone. Imports no torch."""

import math

import pandas as pd

from rethink.config import run_config
from rethink.data.datasets import DATASETS
from rethink.data.variants import label_corruption
from rethink.measures import MEASURE_DIR
from rethink.results.catalog import KERNEL_FIGURE, Plan, drawable_figures
from rethink.results.rademacher import rademacher_runs
from rethink.results.table1 import table1_runs
from rethink.results.table2 import table2_runs
from rethink.runs import RunKey

EXTS = ["png", "pdf", "csv"]  # every figure is drawn twice and saved as its tidy data
MEMORIZATION_TABLES = ["memorization-examples", "memorization-epochs", "critical-samples"]
DOCS_FIGURES = ["fig1a", "fig1b", "fig1c", "fig2a"]  # and the memorization figures drawn


def kernel_variants(config: dict) -> list[str]:
    """The label variants (true, corrupt{p}, random): a Gaussian-kernel interpolation each."""
    return [v for v in config["variants"]["names"] if not math.isnan(label_corruption(v))]


def critical_measured(config: dict, runs: pd.DataFrame) -> bool:
    """Whether any run measures critical samples (training.critical_examples, per model too)."""
    return config["training"]["record_examples"] and any(
        run_config(config, model, "none", 0).critical_examples for model in runs.model.unique()
    )


def run_files(runs: pd.DataFrame, name: str) -> list[str]:
    """File `name` of every run in `runs`, e.g. run_files(runs, "summary.json")."""
    return [f"{RunKey(**row).path()}/{name}" for row in runs.to_dict("records")]


def measure_files(runs: pd.DataFrame, name: str) -> list[str]:
    """Table `name` (rethink.measures.MEASURE_TABLES) of every variant trained on in `runs`."""
    pairs = runs[["dataset", "variant"]].drop_duplicates().to_dict("records")
    return [f"{MEASURE_DIR.format(**pair)}/{name}.csv" for pair in pairs]


def figure_files(dataset: str, figures: list[str]) -> list[str]:
    return [f"results/figures/{dataset}/{f}.{ext}" for f in figures for ext in EXTS]


def final_outputs(config: dict, runs: pd.DataFrame) -> list[str]:
    """Every output of the study: variants, Theorem 1 and the kernels of each in-memory
    dataset, the runs' table, and each figure and table its runs can fill."""
    outputs = [
        f"results/variants/{dataset}/{variant}.h5"
        for dataset in config["datasets"]
        for variant in config["variants"]["names"]
    ]
    # Theorem 1 and the kernels need every image as pixels in memory: not for JPEG datasets.
    for dataset in (d for d in config["datasets"] if not DATASETS[d].encoded):
        outputs.append(f"results/theory/{dataset}.csv")
        if kernel_variants(config):
            outputs.append(f"results/kernels/{dataset}.csv")
            outputs += figure_files(dataset, [KERNEL_FIGURE])
    if runs.empty:
        return outputs
    outputs.append("results/tables/runs.csv")
    measured = critical_measured(config, runs)
    for dataset, of_dataset in runs.groupby("dataset"):
        plan = Plan(of_dataset, measured)
        tables = f"results/tables/{dataset}"
        outputs += figure_files(dataset, drawable_figures(plan, "runs"))
        if not rademacher_runs(of_dataset).empty:
            outputs += [f"{tables}/rademacher.csv", f"{tables}/rademacher.md"]
        if config["training"]["record_examples"]:
            outputs += [f"{tables}/{t}.csv" for t in [*MEMORIZATION_TABLES, "consistency"]]
            outputs.append(f"{tables}/consistency.md")
            outputs += figure_files(dataset, drawable_figures(plan, "memorization"))
        if config["measures"]["enabled"]:
            outputs += [f"{tables}/measures.csv", f"{tables}/measure-ranking.csv"]
            outputs.append(f"{tables}/measure-ranking.md")
            outputs += figure_files(dataset, drawable_figures(plan, "measures"))
        paper_table = "table2" if DATASETS[dataset].encoded else "table1"  # ImageNet's, CIFAR's
        paper_runs = table2_runs if DATASETS[dataset].encoded else table1_runs
        if not paper_runs(of_dataset).empty:
            outputs += [f"{tables}/{paper_table}.{ext}" for ext in ("csv", "md", "tex")]
    return outputs


def docs_figures(config: dict, runs: pd.DataFrame) -> list[str]:
    """The figures `snakemake --cores all docs` copies into docs/: Fig. 1a-c and 2a of the
    study's first dataset, the memorization figures it draws, and the margin figure where it
    measures."""
    figures = list(DOCS_FIGURES)
    dataset = config["datasets"][0]
    plan = Plan(runs[runs.dataset == dataset], critical_measured(config, runs))
    if config["training"]["record_examples"]:
        figures += drawable_figures(plan, "memorization")
    if config["measures"]["enabled"] and "margin-distributions" in drawable_figures(
        plan, "measures"
    ):
        figures.append("margin-distributions")
    return figures


def docs_tables(config: dict) -> dict[str, str]:
    """The tables `snakemake --cores all docs` copies into docs/ and into the README between
    its markers `<!-- {name}:start -->` and `<!-- {name}:end -->`: Table 1 of the study's first
    dataset, and its measure ranking where it measures."""
    tables = f"results/tables/{config['datasets'][0]}"
    docs = {"table1": f"{tables}/table1.md"}
    if config["measures"]["enabled"]:
        docs["measures"] = f"{tables}/measure-ranking.md"
    return docs
