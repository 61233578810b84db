# Training: one job per (dataset, variant, model, regularizer, seed).


rule train_run:
    input:
        variant="results/variants/{dataset}/{variant}.h5",
        source=get_run_source,
        code=script_code("train_run.py"),
    output:
        **RUN_EXAMPLES,
        history=f"{RUN_DIR}/history.csv",
        steps=f"{RUN_DIR}/steps.csv",
        summary=f"{RUN_DIR}/summary.json",
    log:
        "logs/runs/{dataset}/{variant}/{model}/{regularizer}/seed{seed}.log",
    benchmark:
        "results/benchmarks/runs/{dataset}/{variant}/{model}/{regularizer}/seed{seed}.tsv"
    priority: get_run_priority
    conda:
        "../envs/train.yaml"
    threads: get_run_threads
    resources:
        gpu=get_run_gpus,  # `--resources gpu=N`: at most N GPUs busy (one a run, or its own)
        runtime=get_run_runtime,  # minutes and MB asked of a cluster (config key `cluster`)
        mem_mb=get_run_mem_mb,
        nodes=get_run_nodes,  # runs over several nodes (training.nodes), under SLURM only
        tasks=get_run_nodes,
        mpi=get_run_mpi,
        slurm_extra=get_run_slurm_extra,
    params:
        run=get_run_params,
    script:
        "../scripts/train_run.py"
