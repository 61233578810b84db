"""How long a study's training takes, from step times measured on this machine's device.

For every model the study trains, times SGD steps and evaluation passes on random images of the
dataset's shape (the pipeline's own train_epoch and evaluate), then adds up the planned runs:
epochs x (training steps + evaluating the train and test sets once; twice for a run that keeps
a moving average of its weights, as ImageNet's TF recipe does). Runs stop as soon as they
fit, so two totals are printed: every run going to `max_epochs` (an upper bound) and every run
stopping after --fit-epochs epochs. Augmentation and other regularizers are not timed apart.

It also counts each model's floating-point operations per training step (torch's
FlopCounterMode), which gives the rate this device sustains; --assume-tflops R scales the
measured times by (that rate / R): an estimate for a device that is not at hand, printed as
such. Measuring on the device itself is what counts: with --gpu-check, the step and evaluation
times come from the JSON of benchmarks/gpu_check.py run on a GPU (each model in the precision
and compile setting the study asks for there), and nothing is timed here.

Usage: python benchmarks/study_duration.py [--configfile studies/cifar10.yaml]
       [--device auto|cpu|cuda] [--fit-epochs 64] [--assume-tflops 20] [--threads N]
       [--gpu-check gpu_check.json]
"""

import argparse
import json
import math
import platform
from pathlib import Path

import pandas as pd
import torch
from common import (  # this folder's shared benchmark pieces
    averaged,
    pipeline_epoch,
    pipeline_evaluation,
    random_device_data,
    timed,
)
from torch.utils.flop_counter import FlopCounterMode
from train_throughput import add_device_arguments, device_from

from rethink.config import load_study, run_config, run_table
from rethink.data.datasets import DATASETS
from rethink.training.loop import Objective, make_model
from rethink.training.optimizers import make_optimizer
from rethink.training.precision import resolve_precision


def measure_model(config: dict, dataset: str, model: str, device, steps: int) -> dict:
    """Seconds per training step and per evaluated image (with the weights and their moving
    average, where the study keeps one), and FLOPs per training image."""
    run = run_config(config, model, "none", 0)
    n = run.batch_size * steps
    shape = DATASETS[dataset].image_shape
    net = make_model(run, (shape[2], run.crop_size, run.crop_size), 10, device)
    data = random_device_data(net, n, shape, run.crop_size, device)
    inputs, labels = data.train_inputs, data.train_labels  # as training stores them
    optimizer = make_optimizer(run, net)
    average = averaged(net, run)

    with FlopCounterMode(display=False) as flops:
        loss, _ = Objective.of(run)(net(inputs[: run.batch_size]), labels[: run.batch_size])
        loss.backward()
    optimizer.zero_grad(set_to_none=True)

    def evaluation():  # the weights, and their moving average where the run keeps one
        pipeline_evaluation(net, data, run, average)

    pipeline_epoch(net, optimizer, data, run, average=average)  # warm-up: kernels, allocator
    step_s = timed(lambda: pipeline_epoch(net, optimizer, data, run, average=average), device)
    step_s /= steps
    evaluation()
    eval_s = timed(evaluation, device) / n
    step_flop = flops.get_total_flops()
    return dict(
        step_s=step_s, eval_s=eval_s, gflop=step_flop / run.batch_size / 1e9,
        tflops=step_flop / step_s / 1e12,
    )  # fmt: skip


def measured_costs(check: dict, config: dict, models) -> dict:
    """Seconds per training step and per evaluated image of each model, from gpu_check's JSON:
    its figure for the precision and compile setting the study's runs use on that device."""
    table = pd.DataFrame(check["throughput"])
    device = torch.device(check["device"])
    costs = {}
    for model in models:
        run = run_config(config, model, "none", 0)
        precision = resolve_precision(run.precision, device)
        recipe = "tf-inception" if run.aux_loss_weight or run.average_decay else "paper"
        row = table[(table.model == model) & (table.precision == precision)
                    & (table.compiled == run.compile)
                    & (table.get("recipe", "paper") == recipe)]  # fmt: skip
        if row.empty:
            raise SystemExit(
                f"{check['device_name']}: gpu_check did not measure {model} in {precision}"
                f"{' compiled' if run.compile else ''} in the {recipe} recipe; rerun it "
                "without time limits"
            )
        row = row.iloc[0]
        costs[model] = dict(
            step_s=run.batch_size / row.train_images_per_s, eval_s=1 / row.eval_images_per_s,
            gflop=math.nan, tflops=math.nan,
        )  # fmt: skip
    return costs


def run_seconds(run, size: tuple[int, int], step_s: float, eval_s: float, epochs: int) -> float:
    n_train = min(run.train_subset or size[0], size[0])
    n_test = min(run.test_subset or size[1], size[1])
    steps = math.ceil(n_train / run.batch_size)
    n_train_eval = min(run.train_eval_images or n_train, n_train)  # ImageNet: a fixed subset
    return epochs * (steps * step_s + (n_train_eval + n_test) * eval_s)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default="studies/cifar10.yaml")
    add_device_arguments(parser)
    parser.add_argument(
        "--fit-epochs", type=int, default=64,
        help="epochs of a typical run; 64 (25k CIFAR-10 steps): a public reproduction of "
        "Fig. 1a fitted all five variants within that",
    )  # fmt: skip
    parser.add_argument("--assume-tflops", type=float, help="also estimate at this FLOP rate")
    parser.add_argument("--steps", type=int, default=0, help="timed steps (0: by device)")
    parser.add_argument(
        "--gpu-check", type=Path, help="gpu_check.py's JSON: its measured throughputs instead",
    )  # fmt: skip
    args = parser.parse_args()
    config = load_study(args.configfile)
    runs = run_table(config)
    if args.gpu_check:
        check = json.loads(args.gpu_check.read_text())
        measured = measured_costs(check, config, runs.model.unique())
        print(
            f"# {args.configfile}: {len(runs)} runs; measured by gpu_check on "
            f"{check['device_name']} ({check['device']}), torch {check['torch']}, {check['date']}"
        )
    else:
        device = device_from(args)
        steps = args.steps or (50 if device.type == "cuda" else 3)
        where = (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        )
        print(
            f"# {args.configfile}: {len(runs)} runs; torch {torch.__version__} on {device} "
            f"({where or platform.machine()}), {args.threads} threads, {steps} timed steps"
        )

    rows = []
    for (dataset, model), group in runs.groupby(["dataset", "model"], sort=False):
        if args.gpu_check:
            cost = measured[model]
        else:
            cost = measure_model(config, dataset, model, device, steps)
        size = DATASETS[dataset].size
        for r in group.itertuples():
            run = run_config(config, model, r.regularizer, r.seed)
            epochs = {"max": run.max_epochs, "fit": min(args.fit_epochs, run.max_epochs)}
            row = dict(dataset=dataset, model=model, **cost)
            row["epoch_s"] = run_seconds(run, size, cost["step_s"], cost["eval_s"], 1)
            for label, n in epochs.items():
                row[f"{label}_h"] = run_seconds(run, size, cost["step_s"], cost["eval_s"], n) / 3600
            if args.assume_tflops:
                row["assumed_fit_h"] = row["fit_h"] * cost["tflops"] / args.assume_tflops
            rows.append(row)
    table = pd.DataFrame(rows)
    per_model = table.groupby(["dataset", "model"], sort=False).agg(
        runs=("model", "size"), gflop_per_image=("gflop", "first"),
        step_ms=("step_s", lambda s: 1000 * s.iloc[0]), tflops=("tflops", "first"),
        epoch_s=("epoch_s", "first"),
        fit_h=("fit_h", "sum"), max_h=("max_h", "sum"),
        **({"assumed_fit_h": ("assumed_fit_h", "sum")} if args.assume_tflops else {}),
    )  # fmt: skip
    print(per_model.round(3).to_string())
    print(
        f"total, every run {args.fit_epochs} epochs (or its max_epochs): "
        f"{table.fit_h.sum():.1f} h; every run to max_epochs: {table.max_h.sum():.1f} h"
    )
    if args.assume_tflops:
        print(
            f"ESTIMATE, not measured: at {args.assume_tflops:g} TFLOP/s sustained instead of "
            f"the rates above, {args.fit_epochs} epochs a run: "
            f"{table.assumed_fit_h.sum():.1f} h"
        )


if __name__ == "__main__":
    main()
