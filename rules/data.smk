# Source datasets: download the archives, convert them to results/datasets/{dataset}.h5.


rule download_archive:
    output:
        f"{ARCHIVE_DIR}/{{archive}}",
    log:
        f"logs/{ARCHIVE_DIR}/{{archive}}.log",
    retries: 2
    conda:
        "../envs/data.yaml"
    params:
        urls=lambda w: list(ARCHIVES[w.archive].urls),
        md5=lambda w: ARCHIVES[w.archive].md5,
        sha256=lambda w: ARCHIVES[w.archive].sha256,
        size=lambda w: ARCHIVES[w.archive].size,
    script:
        "../scripts/download_archive.py"


rule write_dataset:
    input:
        archives=get_archives,
    output:
        "results/datasets/{dataset}.h5",
    log:
        "logs/datasets/{dataset}.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}.tsv"
    priority: 100
    conda:
        "../envs/data.yaml"
    params:
        code=script_code("write_dataset.py", lambda w: {"rethink.data.datasets": w.dataset}),
        # Where ImageNet lies is not part of what it is: moving the copy converts nothing again.
        options=lambda w: {k: v for k, v in config["data"].items() if k != "imagenet_path"},
    script:
        "../scripts/write_dataset.py"
