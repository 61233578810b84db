"""What the benchmark scripts share: a timer that waits for the device, and random images as
training holds them. It needs torch and rethink only, as benchmarks/gpu_check.py does."""

import time

import torch

from rethink.training.averaging import WeightAverage
from rethink.training.batches import DeviceData, InMemoryBatches, memory_format
from rethink.training.context import Context, Process
from rethink.training.evaluation import Evaluation, evaluate
from rethink.training.loop import Objective, train_epoch
from rethink.training.precision import resolve_precision
from rethink.training.preprocess import preprocess
from rethink.training.settings import RunConfig


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Seconds `fn()` takes, the device's queued work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def random_images(n: int, shape: tuple, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n uniformly random uint8 images of `shape` (H x W x C), and labels of 10 classes."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen)
    return images, torch.randint(0, 10, (n,), generator=gen)


def random_device_data(model, n: int, shape: tuple, crop: int, device) -> DeviceData:
    """n random images as training holds them for `model` on `device`, the training and the
    test split alike."""
    images, labels = random_images(n, shape)
    raw = images.permute(0, 3, 1, 2).contiguous().to(device)
    inputs = preprocess(raw, crop)
    labels = labels.to(device)
    return DeviceData(
        train_images=raw, train_labels=labels, train_inputs=inputs, test_images=raw,
        test_inputs=inputs, test_labels=labels, classes=[str(c) for c in range(10)],
    ).in_memory_format(memory_format(model))  # fmt: skip


def context_for(config: RunConfig, device: torch.device) -> Context:
    """The context of a one-process run of `config` on `device` (rethink.training.context)."""
    return Context(device, resolve_precision(config.precision, device), Process())


def pipeline_epoch(
    model, optimizer, data: DeviceData, config: RunConfig, epoch: int = 0, average=None
):
    """One epoch of rethink.training.loop on `data`, with the run's objective (an auxiliary
    head's loss, label smoothing) and, given one, its moving average of the weights (a
    rethink.training.averaging.WeightAverage); each step's loss."""
    context = context_for(config, data.train_labels.device)
    batches = InMemoryBatches(data, config).train(epoch)
    return train_epoch(
        model, optimizer, batches, context, objective=Objective.of(config), average=average
    )


def averaged(model, config: RunConfig) -> WeightAverage | None:
    """The run's moving average of `model`'s weights, where its config keeps one."""
    return None if config.average_decay is None else WeightAverage(model, config.average_decay)


def pipeline_evaluation(model, data: DeviceData, config: RunConfig, average=None) -> Evaluation:
    """The loop's evaluation of the training split of `data` (with `average`, a
    WeightAverage, that of the moving average too, as the loop does every epoch)."""
    context = context_for(config, data.train_labels.device)
    if average is not None:
        evaluate(average.model, InMemoryBatches(data, config).evaluation("train"), context,
                 data.n_classes)  # fmt: skip
    batches = InMemoryBatches(data, config).evaluation("train")
    return evaluate(model, batches, context, data.n_classes)
