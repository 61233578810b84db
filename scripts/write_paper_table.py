from rethink.results.table1 import write_table1
from rethink.results.table2 import write_table2
from rethink.workflow.jobs import run_job

write = {"table1": write_table1, "table2": write_table2}[snakemake.params.table]
run_job(
    snakemake.log[0],
    write,
    runs_csv=snakemake.input.runs,
    dataset=snakemake.wildcards.dataset,
    out=dict(snakemake.output.items()),
)
