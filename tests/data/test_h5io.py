import fcntl
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import h5py
import numpy as np
import pytest

from rethink.data.h5io import (
    DataFileError,
    ImageDataset,
    Split,
    h5_reason,
    read_dataset,
    write_dataset,
)


def test_round_trip_keeps_layout_dtypes_and_attributes(mnist5k, tmp_path):
    path = tmp_path / "d.h5"
    write_dataset(path, mnist5k)
    with h5py.File(path) as f:
        assert set(f) == {"train", "test"}
        assert f["train/images"].dtype == np.uint8 and f["train/images"].ndim == 4
        assert f["test/labels"].dtype == np.int64
        assert set(f.attrs) >= {"classes", "source", "sha256", "seed"}
    back = read_dataset(path)
    np.testing.assert_array_equal(back.train.images, mnist5k.train.images)
    np.testing.assert_array_equal(back.test.labels, mnist5k.test.labels)
    assert back.classes == mnist5k.classes
    assert back.attrs == mnist5k.attrs


def test_same_dataset_writes_identical_bytes(mnist5k, tmp_path):
    write_dataset(tmp_path / "a.h5", mnist5k)
    write_dataset(tmp_path / "b.h5", mnist5k)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def assert_one_line_error(path, match):
    with pytest.raises(DataFileError) as info:
        read_dataset(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert match in message
    return message


def test_missing_file(tmp_path):
    assert_one_line_error(tmp_path / "nope.h5", "no such file")


def test_truncated_file(mnist5k, tmp_path):
    path = tmp_path / "d.h5"
    write_dataset(path, mnist5k)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_one_line_error(path, "truncated or corrupt")


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / "d.h5"
    path.write_text("images,labels\n")
    message = assert_one_line_error(path, "not a readable HDF5 file")
    assert "(file signature not found)" in message  # h5py's reason, without its preamble


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OSError("Unable to open file (truncated file: eof = 96)"), "truncated file: eof = 96"),
        (OSError("Unable (a) to open (b)"), "b"),
        (OSError("disk quota exceeded "), "disk quota exceeded"),
        (OSError(), "OSError"),
    ],
)
def test_the_reason_is_the_last_parenthesis_of_h5pys_message(error, reason):
    assert h5_reason(error) == reason


def test_missing_dataset_and_wrong_shapes(tmp_path):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["train/images"] = np.zeros((2, 4, 4, 1), np.uint8)
        f["train/labels"] = np.zeros(2, np.int64)
        f["test/images"] = np.zeros((2, 4, 4, 1), np.uint8)
    assert_one_line_error(path, "'test/labels' missing")
    with h5py.File(path, "a") as f:
        f["test/labels"] = np.zeros(3, np.int64)
    assert_one_line_error(path, "expected N x H x W x C images and N labels")
    with h5py.File(path, "a") as f:
        del f["test/images"], f["test/labels"]
        f["test/images"] = np.zeros((2, 4, 4), np.uint8)  # no channel axis
        f["test/labels"] = np.zeros(2, np.int64)
    assert_one_line_error(path, "expected N x H x W x C images and N labels")


def test_dangling_image_link_names_the_missing_target(mnist5k, tmp_path):
    source = tmp_path / "source.h5"
    write_dataset(source, mnist5k)
    write_dataset(tmp_path / "v.h5", mnist5k, image_links={"train": "source.h5"})
    source.unlink()
    assert_one_line_error(tmp_path / "v.h5", "links to source.h5:/train/images")


def test_failed_write_leaves_nothing_behind(tmp_path):
    images = np.zeros((2, 4, 4, 1), dtype=object)  # h5py cannot store object arrays
    bad = ImageDataset(Split(images, np.zeros(2)), Split(images, np.zeros(2)), ["a"])
    with pytest.raises(TypeError):
        write_dataset(tmp_path / "d.h5", bad)
    assert list(tmp_path.iterdir()) == []


def _read_together(path, barrier) -> list[int]:
    barrier.wait()  # all readers open the file at the same moment
    return read_dataset(path).train.labels.tolist()


def test_eight_concurrent_readers_need_no_file_lock(mnist5k, tmp_path):
    source, variant = tmp_path / "dataset.h5", tmp_path / "variant.h5"
    write_dataset(source, mnist5k)
    write_dataset(variant, mnist5k, image_links={"train": "dataset.h5", "test": "dataset.h5"})
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(8)
    # An exclusive lock held on both files, as a crashed writer leaves on a network filesystem:
    # a reader that asked HDF5 for a lock would fail with errno 11.
    with source.open("rb") as a, variant.open("rb") as b:
        fcntl.flock(a, fcntl.LOCK_EX)
        fcntl.flock(b, fcntl.LOCK_EX)
        with pytest.raises(OSError, match="unable to lock file"):
            h5py.File(variant, "r")
        with ProcessPoolExecutor(8, mp_context=context) as pool:
            labels = list(pool.map(_read_together, [variant] * 8, [barrier] * 8))
    assert labels == [mnist5k.train.labels.tolist()] * 8
