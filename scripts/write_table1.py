from rethink.jobs import run_job
from rethink.table1 import write_table1

run_job(
    snakemake.log[0],
    write_table1,
    runs_csv=snakemake.input.runs,
    dataset=snakemake.wildcards.dataset,
    out=dict(snakemake.output.items()),
)
