"""What the per-example record and the critical-sample search cost a run.

Trains one model of a study on the embedded mnist5k digits three ways, same seed: without the
record, with it, and with it and the critical-sample search (the study's `critical_examples`
for that model, or --critical), on true and on random labels, and prints each run's seconds and
the ratio to the plain run. The runs are the study's own (its learning rate, decay, subsets and
epochs), so the ratios are what the study pays.

Usage: python benchmarks/memorization_cost.py [--configfile config.yaml] [--model mlp1x512]
       [--critical N] [--threads 1]
"""

import argparse
import dataclasses
import platform
import tempfile
import time
from pathlib import Path

import torch

from rethink.config import load_study, run_config
from rethink.data.datasets import build_dataset
from rethink.data.h5io import write_dataset
from rethink.data.variants import make_variant
from rethink.training.loop import train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default="config.yaml")
    parser.add_argument("--model", default="mlp1x512")
    parser.add_argument("--critical", type=int, help="critical examples (default: the study's)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    study = load_study(args.configfile)
    base = run_config(study, args.model, "none", 0, threads=args.threads)
    critical = base.critical_examples if args.critical is None else args.critical
    variants = {
        "plain": dataclasses.replace(base, record_examples=False, critical_examples=0),
        "record": dataclasses.replace(base, record_examples=True, critical_examples=0),
        f"record + {critical} critical": dataclasses.replace(
            base, record_examples=True, critical_examples=critical
        ),
    }
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} thread(s), {args.model}, device {base.device}")  # fmt: skip
    dataset = build_dataset("mnist5k", [], study["data"])
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "mnist5k.h5"
        write_dataset(source, dataset)
        warm_up = dataclasses.replace(variants["plain"], max_epochs=2)  # allocator, kernels
        train_run(source, Path(tmp) / "warm-up", warm_up, source)
        for labels in ("true", "random"):
            variant = Path(tmp) / f"{labels}.h5"
            write_dataset(variant, make_variant(dataset, labels, seed=0))
            plain = None
            for name, config in variants.items():
                start = time.perf_counter()
                summary = train_run(variant, Path(tmp) / labels / name, config, source)
                seconds = time.perf_counter() - start
                plain = plain or seconds
                print(f"{labels:6} {name:22} {summary['epochs']:4d} epochs {seconds:7.1f} s "
                      f"{seconds / plain:5.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
