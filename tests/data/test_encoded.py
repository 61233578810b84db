"""The encoded layout (image bytes in one array, offsets, labels) written and read back: splits
larger than the writer's buffer, and label variants read from any working directory."""

import h5py
import numpy as np

from rethink.data import encoded
from rethink.data.encoded import EncodedImages, write_encoded, write_encoded_labels


def images(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, rng.integers(1, 400)).astype(np.uint8).tobytes() for _ in range(n)]


def test_a_split_larger_than_the_write_buffer_reads_back_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(encoded, "CHUNK_BYTES", 64)  # a flush every 4 KiB: many of them
    train, test = images(300), images(20, seed=1)
    splits = {"train": [(d, i % 3) for i, d in enumerate(train)], "test": [(d, 0) for d in test]}
    path = tmp_path / "encoded.h5"
    write_encoded(path, splits, ["a", "b", "c"], {"seed": 0})
    stored = EncodedImages(path, "train")
    assert [stored[i] for i in range(len(stored))] == train
    assert stored.labels.tolist() == [i % 3 for i in range(300)]
    assert [EncodedImages(path, "test")[i] for i in range(20)] == test
    with h5py.File(path, "r", locking=False) as f:  # as EncodedImages holds it open
        assert f["train/jpeg"].shape == (sum(map(len, train)),)  # each byte written once


def test_a_label_variant_links_its_images_relative_to_its_own_folder(tmp_path, monkeypatch):
    source = tmp_path / "datasets" / "encoded.h5"
    source.parent.mkdir()
    write_encoded(source, {"train": [(b"ab", 0)], "test": [(b"cde", 1)]}, ["x", "y"], {})
    variant = tmp_path / "variants" / "random.h5"
    variant.parent.mkdir()
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere" / "deeper")  # not the variant's folder
    write_encoded_labels(variant, source, {"train": [1], "test": [0]}, ["x", "y"], {})
    monkeypatch.chdir(tmp_path)
    train = EncodedImages(variant, "train")
    assert train[0] == b"ab" and train.labels.tolist() == [1]
    assert EncodedImages(variant, "test")[0] == b"cde"
