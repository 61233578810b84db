from rethink.results.figures import Tables, write_figure
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    write_figure,
    name=snakemake.wildcards.figure,
    tables=Tables.read(snakemake.input.runs, snakemake.input.histories, snakemake.input.steps),
    dataset=snakemake.wildcards.dataset,
    out=dict(snakemake.output.items()),
    dpi=snakemake.params.dpi,
)
