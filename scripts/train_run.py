from pathlib import Path

from rethink.config import run_config
from rethink.workflow.jobs import run_job
from rethink.workflow.launch import train_job

w = snakemake.wildcards
config = run_config(snakemake.config, w.model, w.regularizer, w.seed, threads=snakemake.threads)
assert config.determining_fields() == snakemake.params.run, "config changed under the job"
run_dir = Path(snakemake.output.summary).parent
source = snakemake.input.get("source") or None
run_job(snakemake.log[0], train_job, snakemake.input.variant, run_dir, config, snakemake.log[0],
        source)  # fmt: skip
