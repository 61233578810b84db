"""What planning a study costs: wall seconds and peak memory of `snakemake -n` (the parse every
`snakemake` command and every cluster job's Snakefile pays before any work), median of
--repeats runs, for each study given.

Usage: python benchmarks/plan_time.py [CONFIGFILE ...] [--checkout DIR] [--repeats 3]
  CONFIGFILE: studies to plan (default: the checkout's config.yaml); DIR: the checkout whose
  workflow plans them, run in that folder (a finished study there plans against its outputs).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def plan_once(checkout: Path, configfile: Path) -> tuple[float, float]:
    """Seconds and peak resident MB of one `snakemake -n` of `configfile` in `checkout`."""
    snakemake = Path(sys.executable).with_name("snakemake")
    argv = [str(snakemake), "-n", "--configfile", str(configfile)]
    start = time.perf_counter()
    child = subprocess.Popen(argv, cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"snakemake -n failed for {configfile}:\n{child.stderr.read().decode()}")
    child.stderr.close()
    return seconds, usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configfiles", nargs="*", type=Path)
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    print(f"checkout {checkout}; median of {args.repeats} runs of `snakemake -n`")
    for configfile in args.configfiles or [checkout / "config.yaml"]:
        runs = [plan_once(checkout, configfile.resolve()) for _ in range(args.repeats)]
        seconds = statistics.median(s for s, _ in runs)
        peak_mb = statistics.median(mb for _, mb in runs)
        print(f"{configfile}: {seconds:.2f} s, peak {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
