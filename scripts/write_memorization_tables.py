from rethink.memorization.tables import write_memorization_tables
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    write_memorization_tables,
    records=list(snakemake.input.records),
    out=dict(snakemake.output.items()),
)
