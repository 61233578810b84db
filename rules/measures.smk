# Generalization measures (config key `measures`; docs/measures.md): every run's measures from
# its kept weights, one job per variant, then which measure ranks the runs by their
# generalization gap.


rule measure_runs:
    input:
        variant="results/variants/{dataset}/{variant}.h5",
        weights=lambda w: variant_run_files(w, WEIGHTS_FILE),
        summaries=lambda w: variant_run_files(w, "summary.json"),
        steps=lambda w: variant_run_files(w, "steps.csv"),
    output:
        **{name: f"{MEASURE_DIR}/{name}.csv" for name in MEASURE_TABLES},
    log:
        "logs/measures/{dataset}/{variant}.log",
    benchmark:
        "results/benchmarks/measure_runs/{dataset}/{variant}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        code=script_code("measure_runs.py"),
        settings=config["measures"],
    script:
        "../scripts/measure_runs.py"


rule measure_tables:
    input:
        runs="results/tables/runs.csv",
        measures=lambda w: measure_files("measures", w.dataset),
    output:
        measures="results/tables/{dataset}/measures.csv",
        ranking="results/tables/{dataset}/measure-ranking.csv",
        md=report(
            "results/tables/{dataset}/measure-ranking.md",
            caption="../report/measure-ranking.rst",
            category="Tables",
            subcategory="{dataset}",
        ),
    log:
        "logs/tables/{dataset}/measures.log",
    benchmark:
        "results/benchmarks/measure_tables/{dataset}.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        code=script_code("write_measure_tables.py"),
    script:
        "../scripts/write_measure_tables.py"


rule plot_measure_figure:
    input:
        measures="results/tables/{dataset}/measures.csv",
        margins=lambda w: measure_files("margins", w.dataset, margin_figure_runs),
    output:
        png=report(
            "results/figures/{dataset}/{figure}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{dataset}",
            labels={"figure": "{figure}"},
        ),
        pdf="results/figures/{dataset}/{figure}.pdf",
        csv="results/figures/{dataset}/{figure}.csv",
    log:
        "logs/figures/{dataset}/{figure}.log",
    benchmark:
        "results/benchmarks/plot_measure_figure/{dataset}/{figure}.tsv"
    wildcard_constraints:
        figure="|".join(figures_reading("measures")),
    conda:
        "../envs/figures.yaml"
    params:
        code=script_code("plot_measure_figure.py", lambda w: {"rethink.results.catalog": w.figure}),
        caption=lambda w: FIGURES[w.figure].caption,
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/plot_measure_figure.py"
