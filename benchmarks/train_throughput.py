"""Training throughput (images per second) of each model, three ways, in one process:

- rethink: the pipeline's own epoch (rethink.training.loop.train_epoch): the whole set as
  device tensors, in each precision (training.precision) and, with --compile, also compiled
  (training.compile),
- plain: a minimal tensor-resident loop (randperm, index, step) over preprocessed tensors,
- DataLoader: torchvision-style per-sample transforms in a torch DataLoader, the way public
  reproductions of the paper train (these two in float32, eager).

Data: random CIFAR-10-shaped uint8 images (32x32x3, cropped to 28x28; `--data cifar10`) or
the default study's real mnist5k digits (28x28x1; `--data mnist5k`); batch 128, SGD.
Usage: python benchmarks/train_throughput.py [--data cifar10|mnist5k] [--device cpu|cuda]
       [--models ...] [--workers 0] [--precisions fp32 bf16] [--compile]
"""

import argparse
import dataclasses
import functools
import platform
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from common import pipeline_epoch, random_images, timed  # this folder's shared benchmark pieces
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from rethink.data.datasets import build_dataset
from rethink.device import setup_device
from rethink.models import build_model, models_taking
from rethink.training.batches import DeviceData, memory_format
from rethink.training.compiled import compile_model
from rethink.training.loop import make_model
from rethink.training.preprocess import per_image_standardization, preprocess
from rethink.training.settings import RunConfig

# images per timed epoch: enough for a stable figure within seconds per model on a 2-core CPU
IMAGES = {"mlp1x512": 10_240, "mlp3x512": 10_240, "alexnet": 2_560}
IMAGES_DEFAULT = 1_280  # the Inceptions


class PerSampleImages(Dataset):
    """What torchvision.datasets.CIFAR10 does per sample: a PIL image, then the transforms."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.transform = transforms.Compose(
            [
                transforms.CenterCrop(28),
                transforms.ToTensor(),
                transforms.Lambda(lambda x: per_image_standardization(x[None])[0]),
            ]
        )

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        image = self.images[i]
        mode = "L" if image.shape[-1] == 1 else "RGB"
        return self.transform(
            Image.fromarray(image.squeeze(-1) if mode == "L" else image, mode)
        ), int(self.labels[i])


def benchmark_images(data: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 N x H x W x C images and their labels."""
    if data == "mnist5k":
        dataset = build_dataset("mnist5k", [], {"seed": 0, "test_per_class": 100})
        index = torch.arange(n) % len(dataset.train.labels)
        images, labels = dataset.train.images[index.numpy()], dataset.train.labels[index.numpy()]
        return torch.from_numpy(images), torch.from_numpy(labels)
    return random_images(n, (32, 32, 3))


def measure(
    name: str, data: str, device: torch.device, workers: int, repeats: int, settings: list
) -> list[dict]:
    """Rows of images/s: the pipeline's epoch in each (precision, compiled) of `settings`, then
    the plain loop and the DataLoader in float32."""
    n = IMAGES.get(name, IMAGES_DEFAULT)
    images, labels = benchmark_images(data, n)
    config = RunConfig(name, device=str(device), precision="fp32")
    raw = images.permute(0, 3, 1, 2).contiguous().to(device)
    inputs = preprocess(raw, config.crop_size)

    def fresh(pipeline: bool):
        if pipeline:  # as rethink.training.loop prepares it (channels_last for CNNs)
            model = make_model(config, inputs.shape[1:], 10, device)
        else:
            torch.manual_seed(0)
            model = build_model(name, inputs.shape[1:], 10).to(device)
        return model, torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)

    data = DeviceData(
        train_images=raw, train_labels=labels.to(device), train_inputs=inputs,
        test_images=raw[:1], test_inputs=inputs[:1], test_labels=labels[:1],
        classes=[str(c) for c in range(10)],
    )  # fmt: skip

    def plain_epoch(model, optimizer):
        model.train()
        for batch in torch.randperm(n, device=device).split(128):
            loss = F.cross_entropy(model(inputs[batch]), data.train_labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    loader = DataLoader(
        PerSampleImages(images.numpy(), labels), batch_size=128, shuffle=True,
        num_workers=workers, persistent_workers=workers > 0,
    )  # fmt: skip

    def loader_epoch(model, optimizer):
        model.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    # The pipeline's epoch on its data as training stores it (channels_last for CNNs).
    stored = data.in_memory_format(memory_format(fresh(pipeline=True)[0]))
    rows = []

    def add(loop, epoch, precision="fp32", compiled=False):
        model, optimizer = fresh(pipeline=loop == "rethink")
        net = compile_model(model, device) if compiled else model
        one_epoch = functools.partial(epoch, net, optimizer)
        first = timed(one_epoch, device)  # warm-up: allocator, kernels, workers, compilation
        seconds = min(timed(one_epoch, device) for _ in range(repeats))
        rows.append(dict(model=name, loop=loop, precision=precision, compiled=compiled,
                         images_per_s=n / seconds, first_epoch_s=first))  # fmt: skip

    for precision, compiled in settings:
        run = dataclasses.replace(config, precision=precision)
        add("rethink", lambda m, o, run=run: pipeline_epoch(m, o, stored, run), precision,
            compiled)  # fmt: skip
    add("plain", plain_epoch)
    add("dataloader", loader_epoch)
    return rows


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """--device, --threads and --deterministic, which `device_from` sets up as training does."""
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--deterministic", action=argparse.BooleanOptionalAction, default=True,
        help="CUDA: deterministic kernels, as training runs by default (training.deterministic)",
    )  # fmt: skip


def device_from(args: argparse.Namespace) -> torch.device:
    return setup_device(args.device, args.threads, args.deterministic)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["cifar10", "mnist5k"], default="cifar10")
    add_device_arguments(parser)
    parser.add_argument("--models", nargs="+", default=models_taking(28))
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs; the best counts")
    parser.add_argument("--precisions", nargs="+", help="default: fp32 bf16, and tf32 on CUDA")
    parser.add_argument("--compile", action="store_true", help="also measure compiled epochs")
    parser.add_argument("--csv", type=Path, help="also write the table here")
    args = parser.parse_args()
    device = device_from(args)
    precisions = args.precisions or (
        ["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32", "bf16"]
    )
    settings = [(p, c) for c in ([False, True] if args.compile else [False]) for p in precisions]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    machine = where or platform.machine()
    setup = f"{args.threads} threads, DataLoader workers {args.workers}, best of {args.repeats}"
    print(f"# {args.data} images, torch {torch.__version__}, {device} ({machine}), {setup}")
    frames = []
    for name in args.models:
        table = pd.DataFrame(measure(name, args.data, device, args.workers, args.repeats, settings))
        fp32 = table[(table.loop == "rethink") & (table.precision == "fp32") & ~table.compiled]
        table["vs_rethink_fp32"] = table.images_per_s / fp32.images_per_s.max()
        print(table.to_string(index=False, header=not frames, float_format="%.2f"), flush=True)
        frames.append(table)
    if args.csv:
        pd.concat(frames).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
