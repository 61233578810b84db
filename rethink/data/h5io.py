"""The HDF5 layout shared by every dataset and variant file, and its only reader and writer.

Layout: groups `train` and `test`, each with `images` (N x H x W x C, uint8; float32 only for
the `gaussian` variant, whose matched noise would be distorted by rounding and clipping) and
`labels` (int64). File attributes: `classes`, `source`, `sha256` (of the source), `seed`, and for
variants `variant`, `p`, `changed_fraction`.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from rethink import RethinkError
from rethink.files import atomic_path

SPLITS = ("train", "test")


class DataFileError(RethinkError):
    """A dataset file is missing, truncated or not in the layout above."""


@dataclass
class Split:
    images: np.ndarray  # N x H x W x C
    labels: np.ndarray  # N, int64

    def __post_init__(self):
        if self.images.ndim != 4:
            raise ValueError(f"images must be N x H x W x C, got shape {self.images.shape}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")


@dataclass
class ImageDataset:
    train: Split
    test: Split
    classes: list[str]
    attrs: dict = field(default_factory=dict)  # source, sha256, seed and variant facts

    def split(self, name: str) -> Split:
        return getattr(self, name)


def write_dataset(
    path: str | os.PathLike, dataset: ImageDataset, image_links: dict[str, str] | None = None
) -> None:
    """Write `dataset` to `path` atomically.

    `image_links` maps a split to another dataset file, relative to `path`'s directory, whose
    `/{split}/images` this file links to instead of storing a copy (HDF5 external link).
    """
    image_links = image_links or {}
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver="v110") as f:
        for name in SPLITS:
            split = dataset.split(name)
            group = f.create_group(name)
            if name in image_links:
                group["images"] = h5py.ExternalLink(image_links[name], f"/{name}/images")
            else:
                group.create_dataset("images", data=split.images)
            group.create_dataset("labels", data=split.labels.astype(np.int64))
        f.attrs["classes"] = list(dataset.classes)
        for key, value in sorted(dataset.attrs.items()):
            f.attrs[key] = value


def read_dataset(path: str | os.PathLike) -> ImageDataset:
    """Read a whole dataset file; any defect becomes one DataFileError line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file; run snakemake to build it")
    try:
        # Finished files never change: readers need no lock, and shared filesystems often
        # cannot lock at all (HDF5 then fails to open the file).
        f = h5py.File(path, "r", locking=False)
    except OSError as err:
        raise DataFileError(
            f"{path}: not a readable HDF5 file ({h5_reason(err)}); "
            "it is truncated or corrupt: delete it and rerun snakemake"
        ) from None
    with f:
        splits = {name: _read_split(path, f, name) for name in SPLITS}
        if "classes" not in f.attrs:
            raise DataFileError(f"{path}: attribute 'classes' missing; rebuild the file")
        attrs = {k: plain(v) for k, v in f.attrs.items() if k != "classes"}
        classes = [str(c) for c in f.attrs["classes"]]
    return ImageDataset(splits["train"], splits["test"], classes, attrs)


def _read_split(path: Path, f: h5py.File, name: str) -> Split:
    arrays = {}
    for key in ("images", "labels"):
        where = f"{name}/{key}"
        link = f.get(where, getlink=True)
        if link is None:
            raise DataFileError(f"{path}: dataset '{where}' missing; rebuild the file")
        try:
            arrays[key] = f[where][()]
        except (OSError, KeyError, RuntimeError) as err:
            if isinstance(link, h5py.ExternalLink):
                raise DataFileError(
                    f"{path}: '{where}' links to {link.filename}:{link.path}, which cannot be "
                    f"read ({h5_reason(err)}); rebuild that file with snakemake"
                ) from None
            raise DataFileError(
                f"{path}: cannot read '{where}' ({h5_reason(err)}); "
                "the file is truncated or corrupt: delete it and rerun snakemake"
            ) from None
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise DataFileError(
            f"{path}: '{name}' has images {images.shape} and labels {labels.shape}; "
            "expected N x H x W x C images and N labels"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataFileError(f"{path}: '{name}/labels' has dtype {labels.dtype}, not integer")
    return Split(images, labels.astype(np.int64, copy=False))


def h5_reason(err: Exception) -> str:
    """The short reason inside h5py's messages, e.g. 'file signature not found'."""
    found = re.findall(r"\(([^()]*)\)", str(err))
    return found[-1] if found else str(err).strip() or type(err).__name__


def plain(value):
    """HDF5 attribute values as plain Python, so that attrs compare and print naturally."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
