"""A one-shot check of a GPU machine: how fast the paper's models train on it, in which setting,
how many runs should share it, and that the pipeline's training works there.

It needs torch, numpy, h5py and pandas only (no Snakemake, no network: it makes CIFAR-10-shaped
random data itself) and prints one table per part and a JSON file with every figure:

  a) training and evaluation images/s of each model in each precision, eager and compiled
     (compile time apart), batch 128 of 32x32x3 images cropped to 28, as the CIFAR-10 study;
  b) total training images/s of 1, 2 and 4 concurrent runs on the device, and again under
     NVIDIA MPS where it starts;
  c) the wall time for Inception to fit random labels on 50,000 random images to 100% training
     accuracy with the paper's hyper-parameters, in the fastest setting a) found;
  d) a few pipeline runs (rethink.training.loop.train_run) that fit and write the usual outputs;
  e) training and evaluation images/s of Inception V3 on 299x299 images in TF's recipe as
     studies/imagenet.yaml runs it (RMSProp, the auxiliary head, the moving average of the
     weights updated every step, batch norm over sub-batches of 32), 32 images a step as each
     of 8 GPUs takes: with it, benchmarks/study_duration.py --gpu-check prices Table 2.

On one GPU it keeps to --minutes (8); parts a) and c) shorten themselves to the time left, and
say what they left out. --small runs it at a toy size on any device (CI runs it on the CPU).

Usage: python benchmarks/gpu_check.py [--device auto] [--small] [--minutes 8]
       [--json gpu_check.json]
"""

import argparse
import contextlib
import importlib.machinery
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import torch

try:
    import tqdm  # noqa: F401  (training's progress bar)
except ImportError:  # not among this check's requirements: a silent stand-in

    class _NoBar:
        def __init__(self, *args, **kwargs):
            pass

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    _stand_in = types.ModuleType("tqdm")
    _stand_in.__spec__ = importlib.machinery.ModuleSpec("tqdm", None)  # dynamo looks it up
    _stand_in.tqdm = _NoBar
    sys.modules["tqdm"] = _stand_in

from common import (  # this folder's shared benchmark pieces
    averaged,
    pipeline_epoch,
    pipeline_evaluation,
    random_device_data,
    random_images,
    synchronize,
    timed,
)

from rethink.data.h5io import ImageDataset, Split, write_dataset
from rethink.device import setup_device
from rethink.models import models_taking
from rethink.training.compiled import compile_model
from rethink.training.loop import make_model, train_run
from rethink.training.optimizers import make_optimizer
from rethink.training.precision import PRECISIONS, PrecisionError, resolve_precision
from rethink.training.settings import RunConfig
from rethink.workflow.mps import start_mps, stop_mps

BATCH = 128
CIFAR_SHAPE = (32, 32, 3)
CROP = 28  # the paper's crop of CIFAR-10's 32x32 images


@dataclass
class Size:
    """How much each part measures: the GPU sizes, or --small's."""

    steps: int  # timed training steps per throughput figure (a, b)
    compiled_models: list[str]  # models measured compiled (a)
    concurrency: list[int]  # runs at once (b)
    concurrency_seconds: float  # timed seconds per concurrency level (b)
    fit_images: int  # random training images Inception fits (c)
    fit_max_epochs: int
    run_images: int  # training images of each pipeline run (d)
    run_models: list[str]

    imagenet_steps: int  # timed steps of Inception V3 at 299x299 (e)
    imagenet_batch: int


GPU = Size(
    40, models_taking(CROP), [1, 2, 4], 10.0, 50_000, 300, 2_000, ["mlp1x512", "alexnet"], 20, 32
)
SMALL = Size(2, ["mlp1x512"], [1, 2], 2.0, 128, 4, 256, ["mlp1x512", "mlp3x512"], 1, 2)

# TF's Inception recipe as studies/imagenet.yaml sets it, the keys that cost time
# (tests/test_benchmarks.py checks them against the study).
IMAGENET_SHAPE = (299, 299, 3)
TF_RECIPE = dict(
    optimizer="rmsprop", aux_loss_weight=0.4, label_smoothing=0.1, batch_norm_scale=False,
    batch_norm_decay=0.9997, batch_norm_group=32, average_decay=0.9999,
)  # fmt: skip


def throughput(
    name: str, precision: str, compiled: bool, device, steps: int, batch: int = BATCH,
    shape: tuple = CIFAR_SHAPE, crop: int = CROP, **recipe,
) -> dict:  # fmt: skip
    """Training and evaluation images/s of one model and setting; compile time apart. With a
    recipe, evaluation counts both the weights and their moving average."""
    if "batch_norm_group" in recipe:  # --small's batches are smaller than a sub-batch
        recipe = recipe | {"batch_norm_group": min(recipe["batch_norm_group"], batch)}
    config = RunConfig(name, precision=precision, compile=compiled, device=str(device),
                       batch_size=batch, eval_batch_size=2 * batch, **recipe)  # fmt: skip
    model = make_model(config, (3, crop, crop), 10, device)
    data = random_device_data(model, batch * steps, shape, crop, device)
    net = compile_model(model, device) if compiled else model
    optimizer = make_optimizer(config, model)
    average = averaged(model, config)

    def train():
        pipeline_epoch(net, optimizer, data, config, average=average)

    def evaluation():
        pipeline_evaluation(net, data, config, average)

    first = timed(train, device) + timed(evaluation, device)  # compiles, warms caches
    train_s, eval_s = min(timed(train, device) for _ in range(2)), timed(evaluation, device)
    n = len(data.train_labels)
    return dict(
        model=name, precision=precision, compiled=compiled, train_images_per_s=n / train_s,
        eval_images_per_s=n / eval_s, compile_s=max(0.0, first - train_s - eval_s),
        recipe="tf-inception" if recipe else "paper",
    )  # fmt: skip


def measure_imagenet(device, size: Size) -> pd.DataFrame:
    """Part e: Inception V3 at 299x299 in TF's recipe, eager, in each precision."""
    rows = [
        throughput("inception-v3", precision, False, device, size.imagenet_steps,
                   size.imagenet_batch, IMAGENET_SHAPE, IMAGENET_SHAPE[0], **TF_RECIPE)
        for precision in available_precisions(device)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def available_precisions(device) -> list[str]:
    """The precisions this device trains in (tf32 on CUDA only)."""
    precisions = []
    for name in PRECISIONS[1:]:
        with contextlib.suppress(PrecisionError):
            precisions.append(resolve_precision(name, device))
    return precisions


def measure_throughput(device, size: Size, deadline: float) -> tuple[pd.DataFrame, list[str]]:
    """Part a: eager first for every model and precision, then compiled, fastest eager
    precision first, while time is left."""
    precisions = available_precisions(device)
    models = models_taking(CROP)  # the paper's CIFAR-10 models (not ImageNet's Inception V3)
    rows = [throughput(m, p, False, device, size.steps) for m in models for p in precisions]
    eager = pd.DataFrame(rows)
    skipped = []
    for name in size.compiled_models:
        ranked = eager[eager.model == name].sort_values("train_images_per_s", ascending=False)
        for precision in ranked.precision:
            if time.monotonic() > deadline:
                skipped.append(f"{name} {precision} compiled")
                continue
            rows.append(throughput(name, precision, True, device, size.steps))
    return pd.DataFrame(rows), skipped


def concurrent_runs(device, name: str, precision: str, k: int, seconds: float) -> float:
    """Part b: total training images/s of k processes training `name` at once."""
    with tempfile.TemporaryDirectory() as barrier:
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    name,
                    precision,
                    str(seconds),
                    barrier,
                    "--device",
                    str(device),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for _ in range(k)
        ]
        while len(list(Path(barrier).glob("ready.*"))) < k:  # all warmed up: start together
            if any(w.poll() is not None for w in workers):
                raise RuntimeError("a concurrent training process failed before starting")
            time.sleep(0.05)
        (Path(barrier) / "go").touch()
        rates = [float(w.communicate()[0].split()[-1]) for w in workers]
    return sum(rates)


def worker(name: str, precision: str, seconds: float, barrier: str, device) -> None:
    """One of part b's processes: warm up, wait for the others, train for `seconds`."""
    config = RunConfig(name, precision=precision, device=str(device))
    model = make_model(config, (3, CROP, CROP), 10, device)
    data = random_device_data(model, BATCH * 8, CIFAR_SHAPE, CROP, device)
    optimizer = make_optimizer(config, model)
    pipeline_epoch(model, optimizer, data, config)
    synchronize(device)
    (Path(barrier) / f"ready.{os.getpid()}").touch()
    while not (Path(barrier) / "go").exists():
        time.sleep(0.01)
    start, images = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        pipeline_epoch(model, optimizer, data, config)
        images += len(data.train_labels)
    synchronize(device)
    print(images / (time.perf_counter() - start))


def measure_concurrency(device, name: str, precision: str, size: Size) -> pd.DataFrame:
    rows = []
    for k in size.concurrency:
        total = concurrent_runs(device, name, precision, k, size.concurrency_seconds)
        rows.append(dict(model=name, precision=precision, runs=k, mps=False,
                         total_images_per_s=total))  # fmt: skip
    if device.type == "cuda":
        with tempfile.TemporaryDirectory(prefix="mps") as directory:
            if start_mps(Path(directory)):
                try:
                    for k in size.concurrency:
                        total = concurrent_runs(
                            device, name, precision, k, size.concurrency_seconds
                        )
                        rows.append(dict(model=name, precision=precision, runs=k, mps=True,
                                         total_images_per_s=total))  # fmt: skip
                finally:
                    stop_mps()
    table = pd.DataFrame(rows)
    single = table[(table.runs == 1) & ~table.mps].total_images_per_s.iloc[0]
    table["vs_one_run"] = table.total_images_per_s / single
    return table


def random_label_variant(path: Path, n_train: int, n_test: int) -> Path:
    """A CIFAR-10-shaped variant file of random images with random labels."""
    images, labels = random_images(n_train + n_test, CIFAR_SHAPE, seed=1)
    images, labels = images.numpy(), labels.numpy()
    write_dataset(path, ImageDataset(
        train=Split(images[:n_train], labels[:n_train]),
        test=Split(images[n_train:], labels[n_train:]),
        classes=[str(c) for c in range(10)],
    ))  # fmt: skip
    return path


def fit_random_labels(device, setting: dict, size: Size, workdir: Path, budget_s: float) -> dict:
    """Part c: Inception on random labels to 100% training accuracy, as the paper trains it
    (lr 0.1, x0.95 per 391 steps, momentum 0.9, batch 128), stopping at the time budget's
    worth of epochs (estimated from part a)."""
    n_test = max(size.fit_images // 5, BATCH)
    variant = random_label_variant(workdir / "random-labels.h5", size.fit_images, n_test)
    epoch_s = size.fit_images / setting["train_images_per_s"] + (
        (size.fit_images + n_test) / setting["eval_images_per_s"]
    )
    epochs = int(max(1, min(size.fit_max_epochs, (budget_s - setting["compile_s"]) // epoch_s)))
    config = RunConfig(
        "inception", precision=setting["precision"], compile=setting["compiled"],
        device=str(device), max_epochs=epochs,
        checkpoint_every=10**6, deterministic=False, eval_batch_size=2 * BATCH,
    )  # fmt: skip
    start = time.perf_counter()
    summary = train_run(str(variant), str(workdir / "fit"), config)
    return dict(
        images=size.fit_images, precision=setting["precision"], compiled=setting["compiled"],
        fitted=summary["fitted"], epochs=summary["epochs"], max_epochs=epochs,
        steps=summary["steps"], train_acc=summary["train_acc"],
        wall_s=time.perf_counter() - start,
    )  # fmt: skip


def pipeline_runs(device, size: Size, precision: str, workdir: Path) -> pd.DataFrame:
    """Part d: train_run as the workflow calls it, per-example record and critical samples
    included; each must fit and write its outputs."""
    variant = random_label_variant(workdir / "runs.h5", size.run_images, BATCH)
    rows = []
    for name, compiled in itertools.product(size.run_models, (False, True)):
        run_dir = workdir / f"{name}-{'compiled' if compiled else 'eager'}"
        config = RunConfig(
            name, precision=precision, compile=compiled, device=str(device), max_epochs=300,
            record_examples=True, critical_examples=8, eval_batch_size=2 * BATCH,
            lr=0.01 if name.startswith("mlp") else 0.1,
        )  # fmt: skip
        start = time.perf_counter()
        summary = train_run(str(variant), str(run_dir), config, source_path=str(variant))
        outputs = ["history.csv", "steps.csv", "summary.json", "examples.h5"]
        rows.append(dict(
            model=name, precision=summary["precision"], compiled=compiled,
            fitted=summary["fitted"], epochs=summary["epochs"], test_acc=summary["test_acc"],
            outputs=all((run_dir / f).is_file() for f in outputs),
            wall_s=time.perf_counter() - start,
        ))  # fmt: skip
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--small", action="store_true", help="a toy size: a minute on a CPU")
    parser.add_argument("--minutes", type=float, default=8.0, help="the time to keep to")
    parser.add_argument("--json", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = setup_device(args.device, args.threads, deterministic=False)
    if args.worker:
        name, precision, seconds, barrier = args.worker
        return worker(name, precision, float(seconds), barrier, device)

    started = time.monotonic()
    budget = 60 * args.minutes
    size = SMALL if args.small else GPU
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    report = dict(
        date=datetime.now(UTC).isoformat(timespec="seconds"), device=str(device),
        device_name=name or platform.machine(), torch=torch.__version__, small=args.small,
        threads=args.threads,
    )  # fmt: skip
    print(f"# gpu_check on {report['device_name']} ({device}), torch {torch.__version__}")

    table, skipped = measure_throughput(device, size, started + 0.45 * budget)
    report["throughput"] = table.to_dict("records")
    report["throughput_skipped"] = skipped
    print("\n## a) training and evaluation images/s (batch 128, 32x32x3 cropped to 28)")
    print(table.to_string(index=False, float_format="%.1f"))
    if skipped:
        print(f"left out for time: {', '.join(skipped)}")

    eager = table[~table.compiled]
    small_model = "alexnet" if device.type == "cuda" else "mlp1x512"
    best_small = eager[eager.model == small_model].nlargest(1, "train_images_per_s").iloc[0]
    concurrency = measure_concurrency(device, small_model, best_small.precision, size)
    report["concurrency"] = concurrency.to_dict("records")
    print(f"\n## b) concurrent runs of {small_model} on one {device.type} device")
    print(concurrency.to_string(index=False, float_format="%.2f"))

    inception = table[table.model == "inception"].nlargest(1, "train_images_per_s").iloc[0]
    with tempfile.TemporaryDirectory() as workdir:
        left = budget - (time.monotonic() - started)
        fit = fit_random_labels(device, inception.to_dict(), size, Path(workdir), 0.75 * left)
        report["fit_random_labels"] = fit
        print(f"\n## c) Inception, random labels on {fit['images']} random images")
        print(pd.DataFrame([fit]).to_string(index=False, float_format="%.3f"))
        runs = pipeline_runs(device, size, inception.precision, Path(workdir))
    report["pipeline_runs"] = runs.to_dict("records")
    print("\n## d) pipeline runs (train_run): fitted, outputs written")
    print(runs.to_string(index=False, float_format="%.3f"))
    imagenet = measure_imagenet(device, size)
    report["throughput"] += imagenet.to_dict("records")
    print(f"\n## e) Inception V3, 299x299, TF's recipe, {size.imagenet_batch} images a step "
          "(evaluation: the weights and their average)")  # fmt: skip
    print(imagenet.to_string(index=False, float_format="%.1f"))
    report["seconds"] = time.monotonic() - started
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\n{report['seconds']:.0f} s in all; figures in {args.json}")


if __name__ == "__main__":
    main()
