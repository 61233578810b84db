from rethink.jobs import run_job
from rethink.variants import write_variant_file

run_job(
    snakemake.log[0],
    write_variant_file,
    source_path=snakemake.input.dataset,
    output_path=snakemake.output[0],
    name=snakemake.wildcards.variant,
    seed=snakemake.params.seed,
    corrupt_test_labels=snakemake.params.corrupt_test_labels,
)
