from rethink.results.figures import write_catalog_figure
from rethink.results.measure_figures import MeasureTables
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    write_catalog_figure,
    name=snakemake.wildcards.figure,
    tables=MeasureTables.read(snakemake.input.measures, list(snakemake.input.margins)),
    dataset=snakemake.wildcards.dataset,
    out=dict(snakemake.output.items()),
    dpi=snakemake.params.dpi,
)
