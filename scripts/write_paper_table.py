from rethink.jobs import run_job
from rethink.table1 import write_table1
from rethink.table2 import write_table2

write = {"table1": write_table1, "table2": write_table2}[snakemake.params.table]
run_job(
    snakemake.log[0],
    write,
    runs_csv=snakemake.input.runs,
    dataset=snakemake.wildcards.dataset,
    out=dict(snakemake.output.items()),
)
