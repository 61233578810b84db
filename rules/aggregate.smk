# Aggregation: every finished run into tidy tables under results/tables/.


rule aggregate_runs:
    input:
        summaries=run_files("summary.json"),
        histories=run_files("history.csv"),
        steps=run_files("steps.csv"),
        code=script_code("aggregate_runs.py"),
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
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/aggregate_runs.py"
