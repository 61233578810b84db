from pathlib import Path

from rethink.jobs import run_job
from rethink.train import RunConfig, train_run

run_job(
    snakemake.log[0],
    train_run,
    variant_path=snakemake.input[0],
    run_dir=Path(snakemake.output.summary).parent,
    config=RunConfig(**snakemake.params.run),
)
