"""ImageNet's input pipeline on this machine: conversion to the HDF5 layout, and JPEG decoding
with the Inception preprocessing, per CPU core.

Builds ImageNet-like JPEGs (random smooth scenes with texture, sized as ILSVRC's typical
500x375 at quality 90 by default, ~100-150 KB each), in the class-folder layout, then measures
  a) conversion (rethink.data.imagenet): seconds and stored megabytes per 1,000 images, and the
     full dataset's size and time at that rate (1,331,167 images);
  b) decode + `augment` (random crop, flip, colour) and decode + central crop, as training and
     evaluation read them (rethink.training.streams.Examples), in one process on one thread: images
     per second per core; then with --workers DataLoader workers;
  c) the cores each GPU needs to keep up: a GPU's training rate (--gpu-images-per-s, an
     estimate unless you measured it: benchmarks/gpu_check.py) over b)'s rate per core.

Usage: python benchmarks/imagenet_input.py [--images 1000] [--size 375 500] [--workers 2]
       [--gpu-images-per-s 2000]
"""

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rethink.data.imagenet import convert_imagenet
from rethink.training.streams import Examples, Shard, Transform, loader, open_split

IMAGENET_IMAGES = 1_281_167 + 50_000


def scene(rng, height: int, width: int) -> Image.Image:
    """A smooth random colour field with fine texture: compresses like a photograph."""
    coarse = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
    texture = rng.normal(0, 24, (height, width, 3))
    pixels = np.clip(np.asarray(image, float) + texture, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def write_copy(root: Path, n: int, size: tuple[int, int], classes: int = 10) -> float:
    """n images in train/{wnid}/ (and a tenth more in val/); their mean file size in KB."""
    rng = np.random.default_rng(0)
    sizes = []
    for split, count in (("train", n), ("val", max(classes, n // 10))):
        for i in range(count):
            folder = root / split / f"n{i % classes:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{split}_{i:06d}.JPEG"
            scene(rng, *size).save(path, "JPEG", quality=90)
            sizes.append(path.stat().st_size)
    return float(np.mean(sizes)) / 1e3


def images_per_s(examples: Examples, n: int, workers: int, batch: int = 32) -> float:
    data = loader(examples, Shard(range(n), batch), workers, torch.device("cpu"))
    start = time.perf_counter()
    for _ in data:
        pass
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, nargs=2, default=(375, 500), metavar=("H", "W"))
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--gpu-images-per-s", type=float, default=2000.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kb = write_copy(root / "ilsvrc", args.images, tuple(args.size))
        start = time.perf_counter()
        counts = convert_imagenet(root / "ilsvrc", root / "imagenet.h5", {"seed": 0})
        seconds = time.perf_counter() - start
        total = counts["train"] + counts["test"]
        mb = (root / "imagenet.h5").stat().st_size / 1e6
        print(f"\na) conversion of {total} images of {args.size[0]}x{args.size[1]}, "
              f"{kb:.0f} KB each on average")  # fmt: skip
        print(
            f"   {1000 * seconds / total:.2f} s and {1000 * mb / total:.0f} MB per 1,000 "
            f"images; at that rate ImageNet's {IMAGENET_IMAGES:,} images: "
            f"{IMAGENET_IMAGES * seconds / total / 60:.0f} min, "
            f"{IMAGENET_IMAGES * mb / total / 1e3:.0f} GB (real ILSVRC JPEGs average ~110 KB)"
        )

        n, train = counts["train"], open_split(root / "imagenet.h5", "train")
        rates = {}
        for name, augment in (("augment", True), ("central crop", False)):
            examples = Examples(train, Transform(299, augment=augment))
            rates[name] = images_per_s(examples, n, workers=0)
        print("\nb) decode + Inception preprocessing to 299x299, one process, one thread:")
        for name, rate in rates.items():
            print(f"   {name:13s} {rate:7.1f} images/s per core")
        if args.workers > 1:
            examples = Examples(train, Transform(299, augment=True))
            rate = images_per_s(examples, n, workers=args.workers)
            print(f"   augment with {args.workers} DataLoader workers: {rate:.1f} images/s "
                  f"({rate / args.workers:.1f} per worker)")  # fmt: skip

        cores = args.gpu_images_per_s / rates["augment"]
        print(f"\nc) a GPU training at {args.gpu_images_per_s:.0f} images/s needs "
              f"{cores:.1f} cores of this machine decoding and augmenting for it "
              f"({args.gpu_images_per_s:.0f} / {rates['augment']:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
