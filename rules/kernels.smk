# Section 5 of the paper: minimum-norm Gaussian-kernel interpolation of every label variant.


rule kernel_fit:
    input:
        variant="results/variants/{dataset}/{variant}.h5",
    output:
        "results/kernels/{dataset}/{variant}.csv",
    log:
        "logs/kernels/{dataset}/{variant}.log",
    benchmark:
        "results/benchmarks/kernels/{dataset}/{variant}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1  # the solve takes about a second: starting the job costs more
    resources:
        gpu=1,
    params:
        code=script_code("kernel_fit.py"),
        gamma=config["kernels"]["gamma"],
        device=config["kernels"]["device"],
    script:
        "../scripts/kernel_fit.py"


rule kernel_report:
    input:
        results=lambda w: expand(
            "results/kernels/{dataset}/{variant}.csv",
            dataset=w.dataset,
            variant=KERNEL_VARIANTS,
        ),
    output:
        table="results/kernels/{dataset}.csv",
        png=report(
            f"results/figures/{{dataset}}/{KERNEL_FIGURE}.png",
            caption="../report/kernels.rst",
            category="Kernels",
            subcategory="{dataset}",
        ),
        pdf=f"results/figures/{{dataset}}/{KERNEL_FIGURE}.pdf",
        csv=f"results/figures/{{dataset}}/{KERNEL_FIGURE}.csv",
    log:
        "logs/kernels/{dataset}.log",
    benchmark:
        "results/benchmarks/kernel_report/{dataset}.tsv"
    conda:
        "../envs/figures.yaml"
    params:
        code=script_code("kernel_report.py"),
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/kernel_report.py"
