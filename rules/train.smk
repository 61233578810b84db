# Training: one job per (dataset, variant, model, regularizer, seed).


rule train_run:
    input:
        variant="results/variants/{dataset}/{variant}.h5",
        source=get_run_source,
    output:
        **RUN_EXAMPLES,
        history=f"{RUN_DIR}/history.csv",
        steps=f"{RUN_DIR}/steps.csv",
        weights=f"{RUN_DIR}/{WEIGHTS_FILE}",
        summary=f"{RUN_DIR}/summary.json",
    log:
        f"logs/runs/{RunKey.PATTERN}.log",
    benchmark:
        f"results/benchmarks/runs/{RunKey.PATTERN}.tsv"
    priority: RESOURCES.priority
    conda:
        "../envs/train.yaml"
    threads: RESOURCES.threads
    resources:
        gpu=RESOURCES.gpus,  # `--resources gpu=N`: at most N GPUs busy (one a run, or its own)
        runtime=RESOURCES.runtime,  # minutes and MB asked of a cluster (config key `cluster`)
        mem_mb=RESOURCES.mem_mb,
        nodes=RESOURCES.nodes,  # runs over several nodes (training.nodes), under SLURM only
        tasks=RESOURCES.nodes,
        mpi=RESOURCES.mpi,
        slurm_extra=RESOURCES.slurm_extra,
    params:
        code=script_code("train_run.py", lambda w: {"rethink.models": w.model}),
        run=RESOURCES.params,
    script:
        "../scripts/train_run.py"
