from rethink.results.measure_ranking import write_measure_tables
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    write_measure_tables,
    runs_csv=snakemake.input.runs,
    measure_files=snakemake.input.measures,
    dataset=snakemake.wildcards.dataset,
    out=dict(snakemake.output.items()),
)
