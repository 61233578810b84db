# Aggregation: every finished run into tidy tables under results/tables/.


rule aggregate_runs:
    input:
        summaries=run_files("summary.json"),
        histories=run_files("history.csv"),
        steps=run_files("steps.csv"),
    output:
        runs=report(
            "results/tables/runs.csv",
            caption="../report/runs.rst",
            category="Tables",
        ),
        histories="results/tables/histories.csv",
        steps="results/tables/steps.csv",
    log:
        "logs/tables/aggregate_runs.log",
    benchmark:
        "results/benchmarks/aggregate_runs.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        code=script_code("aggregate_runs.py"),
    script:
        "../scripts/aggregate_runs.py"


rule memorization_tables:
    input:
        records=lambda w: run_files(EXAMPLES_FILE, dataset=w.dataset),
    output:
        examples="results/tables/{dataset}/memorization-examples.csv",
        epochs="results/tables/{dataset}/memorization-epochs.csv",
        critical="results/tables/{dataset}/critical-samples.csv",
        consistency="results/tables/{dataset}/consistency.csv",
        consistency_md=report(
            "results/tables/{dataset}/consistency.md",
            caption="../report/consistency.rst",
            category="Tables",
            subcategory="{dataset}",
        ),
    log:
        "logs/tables/{dataset}/memorization.log",
    benchmark:
        "results/benchmarks/memorization_tables/{dataset}.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        code=script_code("write_memorization_tables.py"),
    script:
        "../scripts/write_memorization_tables.py"
