from rethink.results.aggregate import write_tables
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    write_tables,
    summaries=list(snakemake.input.summaries),
    histories=list(snakemake.input.histories),
    steps=list(snakemake.input.steps),
    out=dict(snakemake.output.items()),
)
