"""The HDF5 layout of datasets stored as compressed image files (ImageNet), and its reader.

ImageNet decoded to pixel arrays would take over 300 GB at 299x299; its JPEG files take about
a twentieth. So such a dataset stores each split's JPEG bytes end to end in one chunked uint8
array, `{split}/jpeg`, with `{split}/offsets` (N + 1 int64: image i is jpeg[offsets[i] :
offsets[i + 1]]) and `{split}/labels` (int64), in one file: a cluster filesystem sees one large
file. Attributes as in rethink.data.h5io, plus `image_format = "jpeg"`. Label variants link `jpeg`
and `offsets` to the source file (HDF5 external links) and store their own labels only.
"""

import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from rethink.data.h5io import SPLITS, DataFileError, h5_reason, plain
from rethink.files import atomic_path

IMAGE_FORMAT = "jpeg"
CHUNK_BYTES = 1 << 20  # a random read touches one or two chunks of 1 MiB


def is_encoded(path: str | os.PathLike) -> bool:
    """Whether the dataset file at `path` stores encoded images (this layout); a missing or
    unreadable file is one DataFileError line."""
    with _open(Path(path)) as f:
        return f.attrs.get("image_format") == IMAGE_FORMAT


class EncodedWriter:
    """Append (image bytes, label) pairs to one split of a new file, in order."""

    def __init__(self, f: h5py.File, split: str):
        group = f.create_group(split)
        self.jpeg = group.create_dataset(
            "jpeg", shape=(0,), maxshape=(None,), dtype=np.uint8, chunks=(CHUNK_BYTES,)
        )
        self.group, self.offsets, self.labels = group, [0], []
        self.buffer: list[bytes] = []

    def add(self, data: bytes, label: int) -> None:
        self.buffer.append(data)
        self.offsets.append(self.offsets[-1] + len(data))
        self.labels.append(label)
        if self.offsets[-1] - self.jpeg.shape[0] >= 64 * CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        data = np.frombuffer(b"".join(self.buffer), dtype=np.uint8)
        start = self.jpeg.shape[0]
        self.jpeg.resize((start + len(data),))
        self.jpeg[start:] = data
        self.buffer = []

    def close(self) -> None:
        self.flush()
        self.group.create_dataset("offsets", data=np.asarray(self.offsets, dtype=np.int64))
        self.group.create_dataset("labels", data=np.asarray(self.labels, dtype=np.int64))


def write_encoded(
    path: str | os.PathLike,
    splits: dict[str, Iterable[tuple[bytes, int]]],
    classes: list[str],
    attrs: dict,
) -> None:
    """Write the (bytes, label) pairs of each split to `path`, atomically; `attrs` after the
    images, so that the split iterators may still fill them in."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver="v110") as f:
        for name in SPLITS:
            writer = EncodedWriter(f, name)
            for data, label in splits[name]:
                writer.add(data, label)
            writer.close()
        _write_attrs(f, classes, attrs)


def write_encoded_labels(
    path: str | os.PathLike, source_path: str | os.PathLike, labels: dict, classes, attrs: dict
) -> None:
    """A label variant of the encoded dataset at `source_path`: its own labels, the source's
    image bytes by external link (relative to `path`'s directory)."""
    relative = os.path.relpath(source_path, os.path.dirname(os.path.abspath(path)))
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver="v110") as f:
        for name in SPLITS:
            group = f.create_group(name)
            for key in ("jpeg", "offsets"):
                group[key] = h5py.ExternalLink(relative, f"/{name}/{key}")
            group.create_dataset("labels", data=np.asarray(labels[name], dtype=np.int64))
        _write_attrs(f, classes, attrs)


def _write_attrs(f: h5py.File, classes, attrs: dict) -> None:
    f.attrs["classes"] = list(classes)
    f.attrs["image_format"] = IMAGE_FORMAT
    for key, value in sorted(attrs.items()):
        f.attrs[key] = value


class EncodedImages:
    """One split of an encoded dataset file: its labels in memory, its images read on demand.

    The file opens on first access in each process, so that every DataLoader worker has its own
    handle (an h5py handle must not cross a fork).
    """

    def __init__(self, path: str | os.PathLike, split: str):
        self.path, self.split = Path(path), split
        with _open(self.path) as f:
            self.labels = _read(self.path, f, f"{split}/labels").astype(np.int64)
            self.offsets = _read(self.path, f, f"{split}/offsets")
            self.classes = [str(c) for c in f.attrs["classes"]]
            self.attrs = {k: plain(v) for k, v in f.attrs.items() if k != "classes"}
        if len(self.offsets) != len(self.labels) + 1:
            raise DataFileError(
                f"{self.path}: '{split}' has {len(self.labels)} labels but "
                f"{len(self.offsets) - 1} images; rebuild the file"
            )
        self._jpeg: h5py.Dataset | None = None  # opened in each process on first access
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> bytes:
        if self._pid != os.getpid():
            self._jpeg, self._pid = _open(self.path)[f"{self.split}/jpeg"], os.getpid()
        start, end = self.offsets[i], self.offsets[i + 1]
        return self._jpeg[start:end].tobytes()

    def __getstate__(self):  # DataLoader workers pickle it under the spawn start method
        return {**self.__dict__, "_jpeg": None, "_pid": None}


def read_encoded_labels(path: str | os.PathLike) -> tuple[dict, list[str], dict]:
    """Each split's labels, the classes and the attributes of an encoded dataset file."""
    splits = {name: EncodedImages(path, name) for name in SPLITS}
    first = splits[SPLITS[0]]
    return {n: s.labels for n, s in splits.items()}, first.classes, first.attrs


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise DataFileError(f"{path}: no such file; run snakemake to build it")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as err:
        raise DataFileError(
            f"{path}: not a readable HDF5 file ({h5_reason(err)}); delete it and rerun snakemake"
        ) from None


def _read(path: Path, f: h5py.File, where: str) -> np.ndarray:
    try:
        return f[where][()]
    except (OSError, KeyError, RuntimeError) as err:
        raise DataFileError(
            f"{path}: cannot read '{where}' ({h5_reason(err)}); rebuild it with snakemake"
        ) from None
