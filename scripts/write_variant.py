from rethink.data.variants import write_variant_file
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    write_variant_file,
    source_path=snakemake.input.dataset,
    output_path=snakemake.output[0],
    name=snakemake.wildcards.variant,
    seed=snakemake.params.seed,
    corrupt_test_labels=snakemake.params.corrupt_test_labels,
)
