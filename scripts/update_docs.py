from pathlib import Path

from rethink.results.docs import update_docs
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    update_docs,
    figures=list(snakemake.input.figures),
    table1_md=snakemake.input.table1,
    readme=snakemake.params.readme,
    out_dir=Path(snakemake.output[0]).parent,
)
