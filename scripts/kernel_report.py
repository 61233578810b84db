from rethink.theory.kernel_report import write_kernel_report
from rethink.workflow.jobs import run_job

run_job(
    snakemake.log[0],
    write_kernel_report,
    results=list(snakemake.input.results),
    dataset=snakemake.wildcards.dataset,
    table_path=snakemake.output.table,
    figure_out={kind: snakemake.output[kind] for kind in ("png", "pdf", "csv")},
    dpi=snakemake.params.dpi,
)
