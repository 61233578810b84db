# Randomized variants (Zhang et al. 2017, Section 2.1) of each dataset.


rule write_variant:
    input:
        dataset="results/datasets/{dataset}.h5",
    output:
        "results/variants/{dataset}/{variant}.h5",
    log:
        "logs/variants/{dataset}/{variant}.log",
    benchmark:
        "results/benchmarks/variants/{dataset}/{variant}.tsv"
    priority: 100  # seconds each: make them all first, so every training job is ready to pick
    conda:
        "../envs/data.yaml"
    params:
        code=script_code(
            "write_variant.py",
            lambda w: {"rethink.data.variants": parse_variant(w.variant).pixels},
        ),
        seed=lambda w: variant_seed(config, w.variant),
        corrupt_test_labels=config["variants"]["corrupt_test_labels"],
    script:
        "../scripts/write_variant.py"
