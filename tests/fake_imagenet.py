"""A tiny ILSVRC 2012 copy in both layouts: a few classes of small JPEGs, each class its own
colour (so that a network can learn them), with the oddities of the real train set: a CMYK
JPEG, a greyscale JPEG and a PNG named .JPEG. The tests and the conversion benchmark build it."""

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

# ILSVRC2012_IDs of the devkit deliberately not in wnid order, as in the real meta.mat
WNIDS = {"n01440764": 3, "n01443537": 1, "n01484850": 2}
WORDS = {
    "n01440764": "tench, Tinca tinca", "n01443537": "goldfish", "n01484850": "great white shark",
}  # fmt: skip
ODD = {0: "CMYK", 1: "L", 2: "PNG"}  # train image i of the first class: its oddity


@dataclass
class FakeImagenet:
    root: Path
    train: dict[str, list[bytes]]  # wnid -> its training images' bytes, in file-name order
    val: list[tuple[str, bytes]]  # (wnid, bytes) in validation file-name order


def _image(rng, colour, size, kind="RGB") -> bytes:
    h, w = size
    pixels = np.clip(rng.normal(colour, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    out = io.BytesIO()
    if kind == "PNG":
        image.save(out, format="PNG")
    else:
        image.convert(kind).save(out, format="JPEG", quality=90)
    return out.getvalue()


def make_images(train_per_class=6, val_per_class=3, size=(40, 48), seed=0, odd=True):
    rng = np.random.default_rng(seed)
    colours = {w: rng.uniform(40, 215, 3) for w in WNIDS}
    train = {
        wnid: [
            _image(rng, colours[wnid], size, ODD.get(i, "RGB") if odd and j == 0 else "RGB")
            for i in range(train_per_class)
        ]
        for j, wnid in enumerate(WNIDS)
    }
    val = [(w, _image(rng, colours[w], size)) for w in WNIDS for _ in range(val_per_class)]
    order = rng.permutation(len(val))  # validation files are not grouped by class
    return train, [val[i] for i in order]


def train_name(wnid: str, i: int) -> str:
    return f"{wnid}_{i:04d}.JPEG"


def val_name(n: int) -> str:
    return f"ILSVRC2012_val_{n + 1:08d}.JPEG"


def write_folders(root: Path, **options) -> FakeImagenet:
    train, val = make_images(**options)
    for wnid, images in train.items():
        (root / "train" / wnid).mkdir(parents=True)
        for i, data in enumerate(images):
            (root / "train" / wnid / train_name(wnid, i)).write_bytes(data)
    for n, (wnid, data) in enumerate(val):
        (root / "val" / wnid).mkdir(parents=True, exist_ok=True)
        (root / "val" / wnid / val_name(n)).write_bytes(data)
    return FakeImagenet(root, train, val)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_archives(root: Path, **options) -> FakeImagenet:
    train, val = make_images(**options)
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / "ILSVRC2012_img_train.tar", "w") as outer:
        for wnid, images in train.items():
            inner_bytes = io.BytesIO()
            with tarfile.open(fileobj=inner_bytes, mode="w") as inner:
                for i, data in enumerate(images):
                    _add(inner, train_name(wnid, i), data)
            _add(outer, f"{wnid}.tar", inner_bytes.getvalue())
    with tarfile.open(root / "ILSVRC2012_img_val.tar", "w") as tar:
        for n, (_, data) in enumerate(val):
            _add(tar, val_name(n), data)
    with tarfile.open(root / "ILSVRC2012_devkit_t12.tar.gz", "w:gz") as tar:
        for folder in ("ILSVRC2012_devkit_t12", "ILSVRC2012_devkit_t12/data"):  # as the real one
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        _add(tar, "ILSVRC2012_devkit_t12/data/meta.mat", _meta_mat())
        truth = "".join(f"{WNIDS[wnid]}\n" for wnid, _ in val).encode()
        _add(tar, "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt", truth)
    return FakeImagenet(root, train, val)


def _meta_mat() -> bytes:
    """meta.mat's `synsets` struct array: the leaf classes and one ancestor (num_children > 0)."""
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children"]
    synsets = np.zeros(len(WNIDS) + 1, dtype=[(f, object) for f in fields])
    for k, (wnid, ident) in enumerate(WNIDS.items()):
        synsets[k] = (ident, wnid, WORDS[wnid], "a fish", 0)
    synsets[-1] = (1001, "n01473806", "aquatic vertebrate", "animals living in water", 3)
    out = io.BytesIO()
    scipy.io.savemat(out, {"synsets": synsets})
    return out.getvalue()
