from rethink.jobs import run_job
from rethink.memorization_tables import write_memorization_tables

run_job(
    snakemake.log[0],
    write_memorization_tables,
    records=list(snakemake.input.records),
    out=dict(snakemake.output.items()),
)
