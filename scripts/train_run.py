from pathlib import Path

from rethink.config import run_config
from rethink.training.loop import train_run
from rethink.training.settings import is_streamed
from rethink.workflow.jobs import run_job
from rethink.workflow.launch import train_job

w = snakemake.wildcards
config = run_config(snakemake.config, w.model, w.regularizer, w.seed, threads=snakemake.threads)
assert config.determining_fields() == snakemake.params.run, "config changed under the job"
run_dir = Path(snakemake.output.summary).parent
variant = snakemake.input.variant

if is_streamed(config, w.dataset):  # ImageNet, or several processes (rethink.training.distributed)
    run_job(snakemake.log[0], train_job, variant, run_dir, config, snakemake.log[0])
else:
    source = snakemake.input.get("source") or None
    run_job(
        snakemake.log[0], train_run, variant, run_dir, config, source_path=source,
        gpus_for=config.device,
    )  # fmt: skip
