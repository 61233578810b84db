"""Where a finished study's time went: seconds per rule from Snakemake's benchmark files
(results/benchmarks/), the wall time of the last `snakemake` run from its log, and for training
jobs the cost of starting and ending each one: the job's seconds minus the training its
summary.json counts (Python and torch imports, loading data, writing outputs).

Usage: python benchmarks/study_time.py [CHECKOUT] [--cores 2]
"""

import argparse
import json
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

# results/benchmarks/{folder}/...: the rule of the older folders, named before the rules were
RULE_OF_FOLDER = {
    "runs": "train_run", "variants": "write_variant", "datasets": "write_dataset",
    "kernels": "kernel_fit", "theory": "theorem1",
}  # fmt: skip


def job_seconds(results: Path) -> pd.DataFrame:
    """One row per benchmarked job: its rule, file and wall seconds."""
    rows = []
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        relative = path.relative_to(results / "benchmarks")
        top = relative.parts[0].removesuffix(".tsv")
        seconds = pd.read_csv(path, sep="\t")["s"].iloc[0]
        rows.append(dict(rule=RULE_OF_FOLDER.get(top, top), job=str(relative), s=seconds))
    return pd.DataFrame(rows)


def training_overheads(results: Path, jobs: pd.DataFrame) -> pd.Series:
    """Per training job, its seconds outside the training loop."""
    runs = jobs[jobs.rule == "train_run"]
    overheads = []
    for job in runs.itertuples():
        run_dir = results / "runs" / Path(job.job).relative_to("runs").with_suffix("")
        summary = json.loads((run_dir / "summary.json").read_text())
        overheads.append(job.s - summary["seconds"])
    return pd.Series(overheads, index=runs.job)


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def wall_seconds(checkout: Path) -> float:
    """From the first to the last timestamp in the newest Snakemake log."""
    logs = sorted((checkout / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        raise SystemExit(f"{checkout}: no Snakemake log in .snakemake/log/")
    stamps = [m[1] for m in map(_STAMP.match, logs[-1].read_text().splitlines()) if m]
    parse = lambda s: datetime.strptime(" ".join(s.split()), "%a %b %d %H:%M:%S %Y")  # noqa: E731
    return (parse(stamps[-1]) - parse(stamps[0])).total_seconds()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, nargs="?", default=Path("."))
    parser.add_argument("--cores", type=int, default=2, help="the cores the study ran on")
    args = parser.parse_args()
    jobs = job_seconds(args.checkout / "results")
    per_rule = jobs.groupby("rule").s.agg(jobs="size", seconds="sum", per_job="mean")
    per_rule["share"] = per_rule.seconds / per_rule.seconds.sum()
    print(per_rule.sort_values("seconds", ascending=False).to_string(float_format="%.2f"))
    total, wall = jobs.s.sum(), wall_seconds(args.checkout)
    print(
        f"\n{len(jobs)} jobs, {total:.0f} job-seconds ({total / args.cores:.0f} s on "
        f"{args.cores} cores if perfectly packed); wall time of the last run: {wall:.0f} s"
    )
    overhead = training_overheads(args.checkout / "results", jobs)
    if len(overhead):
        print(
            f"starting and ending a training job (its seconds outside the training loop): "
            f"median {overhead.median():.2f} s, {overhead.sum():.0f} s over {len(overhead)} jobs"
        )


if __name__ == "__main__":
    main()
