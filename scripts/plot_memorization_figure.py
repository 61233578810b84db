from rethink.memorization.figures import MemorizationTables
from rethink.results.figures import write_catalog_figure
from rethink.workflow.jobs import run_job

inputs = snakemake.input
run_job(
    snakemake.log[0],
    write_catalog_figure,
    name=snakemake.wildcards.figure,
    tables=MemorizationTables.read(
        snakemake.wildcards.dataset,
        runs=inputs.runs,
        histories=inputs.histories,
        epochs=inputs.epochs,
        examples=inputs.examples,
        critical=inputs.critical,
    ),
    dataset=snakemake.wildcards.dataset,
    out=dict(snakemake.output.items()),
    dpi=snakemake.params.dpi,
)
