# Section 4 of the paper, computed: Theorem 1's 2n + d network fitted to random labels.


rule theorem1:
    input:
        dataset="results/datasets/{dataset}.h5",
    output:
        "results/theory/{dataset}.csv",
    log:
        "logs/theory/{dataset}.log",
    benchmark:
        "results/benchmarks/theory/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    params:
        code=script_code("theorem1.py"),
        label_seed=variant_seed(config, "random"),
        direction_seed=config["theory"]["seed"],
    script:
        "../scripts/theorem1.py"
