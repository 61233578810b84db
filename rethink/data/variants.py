"""The randomized variants of a dataset (Zhang et al. 2017, Section 2.1).

Every corruption is a pure function of arrays and a seeded numpy Generator. The noise is drawn
once, here, and stored: training never re-draws it. A "pixel" is the whole channel vector at one
(row, column), so permutations move pixels, never single channel values. Pixel corruptions act on
the raw stored images, train and test alike, before any crop or whitening.

To add a corruption of the images, write `f(train_images, test_images, rng) -> (train, test)`
and register it in `PIXEL_CORRUPTIONS`; its name becomes a valid variant in config.yaml.
"""

import logging
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rethink import RethinkError
from rethink.data.encoded import is_encoded, read_encoded_labels, write_encoded_labels
from rethink.data.h5io import SPLITS, ImageDataset, Split, read_dataset, write_dataset

log = logging.getLogger(__name__)

Images = np.ndarray
PixelCorruption = Callable[[Images, Images, np.random.Generator], tuple[Images, Images]]


class VariantNameError(RethinkError):
    """A variant name that is not one of those defined below."""


def corrupt_labels(labels: np.ndarray, p: float, n_classes: int, rng: np.random.Generator):
    """Replace each label, independently with probability p, by a uniform random class.

    The new class can equal the old one, so the expected changed fraction is p (1 - 1/k).
    """
    replaced = rng.random(len(labels)) < p
    out = labels.copy()
    out[replaced] = rng.integers(0, n_classes, int(replaced.sum()))
    return out


def shuffled_pixels(train: Images, test: Images, rng: np.random.Generator):
    """One random permutation of pixel positions, applied to every train and test image."""
    _, h, w, c = train.shape
    perm = rng.permutation(h * w)

    def apply(images):
        return images.reshape(len(images), h * w, c)[:, perm].reshape(images.shape)

    return apply(train), apply(test)


def random_pixels(train: Images, test: Images, rng: np.random.Generator):
    """An independent random permutation of pixel positions for each image."""
    return _permute_each_image(train, rng), _permute_each_image(test, rng)


def gaussian(train: Images, test: Images, rng: np.random.Generator):
    """Replace every image by Gaussian noise with the training set's per-channel mean and std.

    Stored as float32 on the raw pixel scale: rounding and clipping to uint8 would bias the
    matched mean and variance (MNIST's std exceeds its mean).
    """
    channels = train.reshape(-1, train.shape[-1]).astype(np.float64)
    mean, std = channels.mean(axis=0), channels.std(axis=0)

    def noise(shape):
        return (rng.standard_normal(shape, dtype=np.float32) * std + mean).astype(np.float32)

    return noise(train.shape), noise(test.shape)


PIXEL_CORRUPTIONS: dict[str, PixelCorruption] = {
    "shuffled-pixels": shuffled_pixels,
    "random-pixels": random_pixels,
    "gaussian": gaussian,
}


@dataclass(frozen=True)
class VariantSpec:
    name: str
    p: float  # probability that a training label is replaced by a random class
    pixels: str | None = None  # key of PIXEL_CORRUPTIONS, or None for a label-only variant
    rademacher: bool = False  # labels replaced by random signs: two classes, -1 and +1

    @property
    def labels_only(self) -> bool:
        return self.pixels is None


# ASCII digits only: `\d` also matches other scripts' digits, which float() reads too.
_CORRUPT = re.compile(r"corrupt(?P<p>[0-9]+(\.[0-9]+)?)")
_RADEMACHER = re.compile(r"rademacher[0-9]*")
RADEMACHER_CLASSES = ["-1", "+1"]


def parse_variant(name: str) -> VariantSpec:
    """`true`, `random` (p = 1), `corrupt{p}` (0 <= p <= 1), a pixel corruption's name, or
    `rademacher{k}`: random signs, the k-th independent draw (any digits, or none)."""
    if name == "true":
        return VariantSpec(name, 0.0)
    if name == "random":
        return VariantSpec(name, 1.0)
    if name in PIXEL_CORRUPTIONS:
        return VariantSpec(name, 0.0, pixels=name)
    if _RADEMACHER.fullmatch(name):
        return VariantSpec(name, float("nan"), rademacher=True)
    match = _CORRUPT.fullmatch(name)
    if match:
        p = float(match["p"])
        if not 0 <= p <= 1:
            raise VariantNameError(
                f"variant '{name}': corruption level p = {p} is outside [0, 1]; "
                "write corrupt{p} with 0 <= p <= 1, e.g. corrupt0.2"
            )
        return VariantSpec(name, p)
    known = ", ".join(
        ["true", "random", "corrupt{p} (e.g. corrupt0.2)", *PIXEL_CORRUPTIONS, "rademacher{k}"]
    )
    raise VariantNameError(f"unknown variant '{name}'; known variants: {known}")


def label_corruption(name: str) -> float:
    """p of a label-only variant (true 0, random 1); NaN for pixel corruptions and random
    signs."""
    spec = parse_variant(name)
    return spec.p if spec.labels_only else float("nan")


def variant_rng(name: str, seed: int) -> np.random.Generator:
    """The variant's own noise stream: variants sharing a seed still get independent noise."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def make_variant(
    source: ImageDataset, name: str, seed: int, corrupt_test_labels: bool = False
) -> ImageDataset:
    """The variant `name` of `source`, with its facts recorded in `attrs`.

    Test labels stay clean unless `corrupt_test_labels`: test error then measures
    generalization with respect to the true labels.
    """
    spec = parse_variant(name)
    rng = variant_rng(name, seed)
    train_images, test_images = source.train.images, source.test.images
    if spec.pixels is not None:
        train_images, test_images = PIXEL_CORRUPTIONS[spec.pixels](train_images, test_images, rng)
    labels = {split: source.split(split).labels for split in SPLITS}
    classes, new = variant_labels(spec, labels, source.classes, rng, corrupt_test_labels)
    attrs = variant_attrs(source.attrs, spec, seed, corrupt_test_labels, labels, new)
    return ImageDataset(
        Split(train_images, new["train"]), Split(test_images, new["test"]), classes, attrs
    )


def variant_labels(
    spec: VariantSpec, labels: dict, classes: list[str], rng, corrupt_test_labels: bool
) -> tuple[list[str], dict]:
    """The variant's classes and its labels of each split, from the source's `labels`."""
    if spec.rademacher:  # a random sign for every example, test ones too: nothing to learn
        signs = {split: rng.integers(0, 2, len(labels[split])) for split in SPLITS}
        return RADEMACHER_CLASSES, signs
    test = labels["test"]
    train = corrupt_labels(labels["train"], spec.p, len(classes), rng)
    if corrupt_test_labels:
        test = corrupt_labels(test, spec.p, len(classes), rng)
    return classes, {"train": train, "test": test}


def variant_attrs(
    source_attrs: dict, spec: VariantSpec, seed: int, corrupt_test_labels: bool, old, new
) -> dict:
    return {
        **source_attrs,
        "variant": spec.name,
        "p": spec.p,
        "seed": seed,
        "dataset_seed": source_attrs.get("seed", -1),
        "corrupt_test_labels": corrupt_test_labels,
        "changed_fraction": float(np.mean(new["train"] != old["train"])),
        "test_changed_fraction": float(np.mean(new["test"] != old["test"])),
    }


def _permute_each_image(images: Images, rng: np.random.Generator, chunk: int = 4096) -> Images:
    n, h, w, c = images.shape
    flat = images.reshape(n, h * w, c)
    out = np.empty_like(flat)
    positions = np.arange(h * w, dtype=np.int32)
    for start in range(0, n, chunk):
        block = flat[start : start + chunk]
        perms = rng.permuted(np.broadcast_to(positions, (len(block), h * w)), axis=1)
        out[start : start + chunk] = np.take_along_axis(block, perms[:, :, None], axis=1)
    return out.reshape(images.shape)


def write_variant_file(
    source_path: str, output_path: str, name: str, seed: int, corrupt_test_labels: bool = False
) -> None:
    """Read a dataset file, write its variant `name`.

    A label-only variant stores no image copy: its images are HDF5 external links to the
    source file, by a path relative to the variant's own directory.
    """
    if is_encoded(source_path):
        changed = _write_encoded_variant(source_path, output_path, name, seed, corrupt_test_labels)
    else:
        source = read_dataset(source_path)
        variant = make_variant(source, name, seed, corrupt_test_labels)
        links = {}
        if parse_variant(name).labels_only:
            relative = os.path.relpath(source_path, os.path.dirname(os.path.abspath(output_path)))
            links = {split: relative for split in SPLITS}
        write_dataset(output_path, variant, image_links=links)
        changed = variant.attrs["changed_fraction"]
    log.info(
        "%s: variant %s, seed %d, %.2f%% of train labels changed",
        output_path, name, seed, 100 * changed,
    )  # fmt: skip


def _write_encoded_variant(source_path, output_path, name, seed, corrupt_test_labels) -> float:
    """A label variant of an encoded dataset (ImageNet): labels only, the images linked."""
    spec = parse_variant(name)
    if not spec.labels_only:
        raise VariantNameError(
            f"variant '{name}' changes pixels, and {source_path} stores JPEG files, which this "
            "pipeline does not re-encode; use true, random, corrupt{p} or rademacher{k}"
        )
    labels, classes, attrs = read_encoded_labels(source_path)
    rng = variant_rng(name, seed)
    classes, new = variant_labels(spec, labels, classes, rng, corrupt_test_labels)
    attrs = variant_attrs(attrs, spec, seed, corrupt_test_labels, labels, new)
    write_encoded_labels(output_path, source_path, new, classes, attrs)
    return attrs["changed_fraction"]
