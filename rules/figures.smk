# Figures and tables of the paper, per dataset, from the aggregated tables.


rule plot_figure:
    input:
        runs="results/tables/runs.csv",
        histories="results/tables/histories.csv",
        steps="results/tables/steps.csv",
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
        "results/benchmarks/plot_figure/{dataset}/{figure}.tsv"
    wildcard_constraints:
        figure="|".join(figures_reading("runs")),
    conda:
        "../envs/figures.yaml"
    params:
        code=script_code("plot_figure.py", lambda w: {"rethink.results.catalog": w.figure}),
        caption=lambda w: FIGURES[w.figure].caption,
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/plot_figure.py"


rule write_table1:
    input:
        runs="results/tables/runs.csv",
        paper=workdir_relative(PAPER_TABLE1),
    output:
        csv="results/tables/{dataset}/table1.csv",
        md=report(
            "results/tables/{dataset}/table1.md",
            caption="../report/table1.rst",
            category="Tables",
            subcategory="{dataset}",
        ),
        tex="results/tables/{dataset}/table1.tex",
    log:
        "logs/tables/{dataset}/table1.log",
    benchmark:
        "results/benchmarks/write_table1/{dataset}.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        code=script_code("write_paper_table.py"),
        table="table1",
    script:
        "../scripts/write_paper_table.py"


rule write_table2:
    input:
        runs="results/tables/runs.csv",
        paper=workdir_relative(PAPER_TABLE2),
    output:
        csv="results/tables/{dataset}/table2.csv",
        md=report(
            "results/tables/{dataset}/table2.md",
            caption="../report/table2.rst",
            category="Tables",
            subcategory="{dataset}",
        ),
        tex="results/tables/{dataset}/table2.tex",
    log:
        "logs/tables/{dataset}/table2.log",
    benchmark:
        "results/benchmarks/write_table2/{dataset}.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        code=script_code("write_paper_table.py"),
        table="table2",
    script:
        "../scripts/write_paper_table.py"


rule docs:
    input:
        **DOCS_TABLES,
        figures=expand(
            "results/figures/{dataset}/{figure}.png", dataset=DOCS_DATASET, figure=DOCS_FIGURES
        ),
    output:
        expand("docs/{figure}.png", figure=DOCS_FIGURES),
        [f"docs/{Path(table).name}" for table in DOCS_TABLES.values()],
    log:
        "logs/docs.log",
    conda:
        "../envs/figures.yaml"
    params:
        code=script_code("update_docs.py"),
        readme="README.md",
        tables=list(DOCS_TABLES),
    script:
        "../scripts/update_docs.py"


rule write_rademacher:
    input:
        runs="results/tables/runs.csv",
    output:
        csv="results/tables/{dataset}/rademacher.csv",
        md=report(
            "results/tables/{dataset}/rademacher.md",
            caption="../report/rademacher.rst",
            category="Tables",
            subcategory="{dataset}",
        ),
    log:
        "logs/tables/{dataset}/rademacher.log",
    benchmark:
        "results/benchmarks/write_rademacher/{dataset}.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        code=script_code("write_rademacher.py"),
    script:
        "../scripts/write_rademacher.py"


rule plot_memorization_figure:
    input:
        runs="results/tables/runs.csv",
        histories="results/tables/histories.csv",
        epochs="results/tables/{dataset}/memorization-epochs.csv",
        examples="results/tables/{dataset}/memorization-examples.csv",
        critical="results/tables/{dataset}/critical-samples.csv",
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
        "results/benchmarks/plot_memorization_figure/{dataset}/{figure}.tsv"
    wildcard_constraints:
        figure="|".join(figures_reading("memorization")),
    conda:
        "../envs/figures.yaml"
    params:
        code=script_code(
            "plot_memorization_figure.py", lambda w: {"rethink.results.catalog": w.figure}
        ),
        caption=lambda w: FIGURES[w.figure].caption,
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/plot_memorization_figure.py"
