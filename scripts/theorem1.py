from rethink.theory.theorem1 import write_theorem1_table
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    write_theorem1_table,
    dataset_path=snakemake.input.dataset,
    output_path=snakemake.output[0],
    label_seed=snakemake.params.label_seed,
    direction_seed=snakemake.params.direction_seed,
)
