from rethink.warm import delegate

delegate(snakemake, __file__)  # a warm-start server runs the rest in a forked child, or here:

from pathlib import Path

from rethink.config import run_config
from rethink.jobs import run_job
from rethink.train import train_run

w = snakemake.wildcards
config = run_config(snakemake.config, w.model, w.regularizer, w.seed, threads=snakemake.threads)
assert config.determining_fields() == snakemake.params.run, "config changed under the job"

run_job(
    snakemake.log[0],
    train_run,
    variant_path=snakemake.input.variant,
    run_dir=Path(snakemake.output.summary).parent,
    config=config,
    source_path=snakemake.input.get("source") or None,
)
