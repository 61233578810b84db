"""What only Snakemake needs around the jobs: the job wrapper, rerun tracking, GPU claims, MPS,
launching processes, cluster resources, folders shared among users. Only the Snakefile, the
scripts and the launcher's workers import it."""
