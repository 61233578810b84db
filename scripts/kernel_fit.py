from rethink.theory.kernels import write_kernel_result
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    write_kernel_result,
    variant_path=snakemake.input.variant,
    output_path=snakemake.output[0],
    gamma=snakemake.params.gamma,
    device=snakemake.params.device,
    gpus_for=snakemake.params.device,
    threads=snakemake.threads,
)
