from rethink.results.rademacher import write_rademacher_table
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    write_rademacher_table,
    runs_csv=snakemake.input.runs,
    dataset=snakemake.wildcards.dataset,
    out={"csv": snakemake.output.csv, "md": snakemake.output.md},
)
