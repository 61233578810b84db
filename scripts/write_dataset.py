from rethink.data.datasets import write_dataset_file
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    write_dataset_file,
    name=snakemake.wildcards.dataset,
    archive_paths=list(snakemake.input.archives),
    options=snakemake.params.options | {"imagenet_path": snakemake.config["data"]["imagenet_path"]},
    output_path=snakemake.output[0],
)
