"""Theorem 1 at CIFAR-10's size: the 2n + d network fitted to random labels on n = 50,000
points in d = 3,072 dimensions, and its fit measured by evaluating it in extended precision.

Uses the real CIFAR-10 training images when the archive is at resources/archives/ (where the
workflow downloads it), else random uint8 images of that shape.

Usage: python benchmarks/theorem1.py [--n 50000]
"""

import argparse
import platform
import tarfile
from pathlib import Path

import numpy as np

from rethink.data.datasets import ARCHIVE_DIR, DATASETS
from rethink.theory.theorem1 import theorem1_fit


def training_images(n: int) -> tuple[np.ndarray, str]:
    source = DATASETS["cifar10"]
    paths = [Path(ARCHIVE_DIR) / archive.filename for archive in source.archives]
    if all(p.exists() for p in paths):
        try:
            return source.load(paths, {}).train.images[:n], "CIFAR-10 training images"
        except (OSError, tarfile.TarError) as err:
            print(f"# {paths[0]} unreadable ({err}): using random images")
    shape = (n, *source.image_shape)
    images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    return images, "random uint8 images of CIFAR-10's shape"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    args = parser.parse_args()
    images, what = training_images(args.n)
    labels = np.random.default_rng(1).integers(0, 10, len(images))
    fit = theorem1_fit(images, labels)
    print(f"# {what}; {platform.processor() or platform.machine()}, numpy {np.__version__}")
    for key, value in fit.items():
        print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
