from rethink.data.download import download
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    download,
    urls=snakemake.params.urls,
    dest=snakemake.output[0],
    md5=snakemake.params.md5,
    sha256=snakemake.params.sha256,
    size=snakemake.params.size,
)
