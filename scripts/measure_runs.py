from pathlib import Path

from rethink.measures.run import MeasureSettings, write_variant_measures
from rethink.workflow.jobs import run_job

settings = MeasureSettings.from_config(snakemake.params.settings)
run_job(
    snakemake.log[0],
    write_variant_measures,
    run_dirs=[Path(summary).parent for summary in snakemake.input.summaries],
    variant=snakemake.input.variant,
    out=dict(snakemake.output.items()),
    settings=settings,
    threads=snakemake.threads,
    gpus_for=settings.device,
)
