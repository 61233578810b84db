from pathlib import Path

from rethink.results.docs import update_docs
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    update_docs,
    figures=list(snakemake.input.figures),
    tables={name: snakemake.input[name] for name in snakemake.params.tables},
    readme=snakemake.params.readme,
    out_dir=Path(snakemake.output[0]).parent,
)
