"""ILSVRC 2012 (ImageNet) from a local copy, converted to the encoded layout (rethink.data.encoded).

ImageNet cannot be downloaded: users obtain it under its licence and set `data.imagenet_path`
to a folder holding either the official archives (ILSVRC2012_img_train.tar of per-class tars,
ILSVRC2012_img_val.tar, ILSVRC2012_devkit_t12.tar.gz for the validation labels and class names)
or the extracted class folders (train/{wnid}/*.JPEG, val/{wnid}/*.JPEG). The validation set is
the test set, as in the paper. Labels index the sorted WordNet ids (torchvision's ImageFolder
order). Training images are stored class by class, each class's files in name order, and
validation images in file-name order: both layouts give the same file.

Images are stored as their JPEG bytes, unchanged, when they are RGB JPEGs. The few that are not
(ILSVRC 2012's train set holds 22 CMYK JPEGs, 1 PNG named .JPEG and some greyscale JPEGs) are
decoded and stored re-encoded as RGB JPEGs (quality 95, no chroma subsampling): every image
converts, and every stored image decodes to 3 channels. Their count is in the file's
`reencoded` attribute. A file that is no image at all stops the conversion, naming it.
"""

import io
import logging
import re
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from rethink.data.encoded import write_encoded
from rethink.data.h5io import DataFileError

log = logging.getLogger(__name__)

TRAIN_TAR, VAL_TAR, DEVKIT = (
    "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz",
)  # fmt: skip
DEVKIT_META = "data/meta.mat"
DEVKIT_VAL_LABELS = "data/ILSVRC2012_validation_ground_truth.txt"
WNID = re.compile(r"n\d{8}")
REENCODE_QUALITY = 95


class ImagenetPathError(DataFileError):
    """`data.imagenet_path` does not hold a complete ILSVRC 2012 copy."""


@dataclass(frozen=True)
class ImagenetCopy:
    root: Path
    archives: bool  # the official archives; else the extracted class folders


def find_imagenet(path: str | Path | None) -> ImagenetCopy:
    """The ILSVRC 2012 copy at `path`; one ImagenetPathError line naming what is missing."""
    if not path:
        raise ImagenetPathError(
            "config key 'data.imagenet_path' is not set: set it to the folder that holds "
            f"{TRAIN_TAR}, {VAL_TAR} and {DEVKIT}, or train/ and val/ class folders"
        )
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ImagenetPathError(f"data.imagenet_path: {root} is not a folder")
    archives = [name for name in (TRAIN_TAR, VAL_TAR, DEVKIT) if (root / name).is_file()]
    if archives:
        missing = [n for n in (TRAIN_TAR, VAL_TAR, DEVKIT) if n not in archives]
        if missing:
            raise ImagenetPathError(
                f"data.imagenet_path: {root} has {', '.join(archives)} but not "
                f"{', '.join(missing)}; place every official archive there"
            )
        return ImagenetCopy(root, archives=True)
    folders = {split: _class_folders(root / split) for split in ("train", "val")}
    missing = [f"{s}/" for s, classes in folders.items() if not classes]
    if missing:
        raise ImagenetPathError(
            f"data.imagenet_path: {root} has neither the archives {TRAIN_TAR}, {VAL_TAR}, "
            f"{DEVKIT} nor class folders {{wnid}}/ in {' and '.join(missing)}"
        )
    extra = sorted(set(folders["val"]) - set(folders["train"]))
    if extra:
        raise ImagenetPathError(
            f"data.imagenet_path: {root}/val has classes with no train folder: {extra[:3]}"
        )
    return ImagenetCopy(root, archives=False)


def _class_folders(split_dir: Path) -> list[str]:
    if not split_dir.is_dir():
        return []
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and WNID.fullmatch(d.name))


def rgb_jpeg(data: bytes, name: str) -> tuple[bytes, bool]:
    """`data` if it is an RGB JPEG, else the image re-encoded as one; and whether it was."""
    from PIL import Image  # here, not above: planning a study imports this module, not PIL

    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            if image.format == "JPEG" and image.mode == "RGB":
                return data, False
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=REENCODE_QUALITY, subsampling=0)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataFileError(f"{name}: not a readable image ({err}); replace the file") from None
    return out.getvalue(), True


# (name for messages, wnid, image bytes), for one split
Images = Iterator[tuple[str, str, bytes]]


def _folder_images(split_dir: Path, by_class: bool) -> Images:
    """The images of each class folder in turn (`by_class`), or of all of them in file-name
    order, as the validation archive holds them."""
    files = [
        (file, wnid)
        for wnid in _class_folders(split_dir)
        for file in sorted((split_dir / wnid).iterdir())
        if file.is_file()
    ]
    if not by_class:
        files.sort(key=lambda pair: pair[0].name)
    for file, wnid in files:
        yield str(file), wnid, file.read_bytes()


def _train_archive_images(path: Path) -> Images:
    try:
        with tarfile.open(path) as outer:
            members = sorted(
                (m for m in outer.getmembers() if m.name.endswith(".tar")), key=lambda m: m.name
            )
            for member in members:
                wnid = Path(member.name).stem
                with tarfile.open(fileobj=outer.extractfile(member)) as inner:
                    files = sorted((m for m in inner.getmembers() if m.isfile()), key=_name)
                    for file in files:
                        name = f"{path}:{member.name}/{file.name}"
                        yield name, wnid, inner.extractfile(file).read()
    except (tarfile.TarError, EOFError) as err:
        raise DataFileError(f"{path}: cannot read the archive ({err}); replace it") from None


def _val_archive_images(path: Path, wnids: list[str]) -> Images:
    """The validation images in file-name order, the devkit's labels (`wnids`) in that order."""
    try:
        with tarfile.open(path) as tar:
            files = sorted((m for m in tar.getmembers() if m.isfile()), key=_name)
            if len(files) != len(wnids):
                raise DataFileError(
                    f"{path}: {len(files)} images but {len(wnids)} labels in {DEVKIT}; "
                    "the archives do not belong together"
                )
            for file, wnid in zip(files, wnids, strict=True):
                yield f"{path}:{file.name}", wnid, tar.extractfile(file).read()
    except (tarfile.TarError, EOFError) as err:
        raise DataFileError(f"{path}: cannot read the archive ({err}); replace it") from None


def _name(member: tarfile.TarInfo) -> str:
    return member.name


def read_devkit(path: Path) -> tuple[dict[str, str], list[str]]:
    """From the devkit: each wnid's words (class names), and the wnid of every validation
    image in file-name order."""
    import scipy.io

    try:
        with tarfile.open(path) as tar, tempfile.TemporaryDirectory() as tmp:
            members = {m.name.split("/", 1)[-1]: m for m in tar.getmembers()}
            for wanted in (DEVKIT_META, DEVKIT_VAL_LABELS):
                if wanted not in members:
                    raise DataFileError(f"{path}: {wanted} missing; replace the devkit archive")
            meta_path = Path(tmp) / "meta.mat"
            meta_path.write_bytes(tar.extractfile(members[DEVKIT_META]).read())
            ground_truth = tar.extractfile(members[DEVKIT_VAL_LABELS]).read().decode().split()
            synsets = scipy.io.loadmat(meta_path, squeeze_me=True)["synsets"]
    except (tarfile.TarError, EOFError, ValueError) as err:
        raise DataFileError(f"{path}: cannot read the devkit ({err}); replace it") from None
    leaves = synsets[synsets["num_children"] == 0]  # the 1,000 classes; the rest are ancestors
    ids, wnids = leaves["ILSVRC2012_ID"], leaves["WNID"]
    wnid_of_id = {int(i): str(w) for i, w in zip(ids, wnids, strict=True)}
    words = {str(w): str(t) for w, t in zip(leaves["WNID"], leaves["words"], strict=True)}
    return words, [wnid_of_id[int(i)] for i in ground_truth]


def convert_imagenet(path: str | Path | None, output_path: str, options: dict) -> dict:
    """Convert the ILSVRC 2012 copy at `path` to an encoded dataset file; return its facts."""
    copy = find_imagenet(path)
    root = copy.root
    if copy.archives:
        words, val_wnids = read_devkit(root / DEVKIT)
        splits = {
            "train": _train_archive_images(root / TRAIN_TAR),
            "test": _val_archive_images(root / VAL_TAR, val_wnids),
        }
        classes = sorted(words)
    else:
        words = {}
        classes = _class_folders(root / "train")
        splits = {
            "train": _folder_images(root / "train", by_class=True),
            "test": _folder_images(root / "val", by_class=False),
        }
    index = {wnid: i for i, wnid in enumerate(classes)}
    counts = {"train": 0, "test": 0}
    attrs = {
        "source": str(root),
        "class_names": [words.get(w, w) for w in classes],
        "seed": options["seed"],
        "reencoded": 0,  # counted while the images are written, stored after them
    }

    def pairs(split: str, images: Images):
        for name, wnid, data in tqdm(images, desc=f"imagenet {split}", unit="image", mininterval=5):
            if wnid not in index:
                raise DataFileError(f"{name}: class {wnid} is not one of the training classes")
            data, reencoded = rgb_jpeg(data, name)
            if reencoded:
                log.info("%s: not an RGB JPEG; stored re-encoded as one", name)
            attrs["reencoded"] += reencoded
            counts[split] += 1
            yield data, index[wnid]

    write_encoded(output_path, {s: pairs(s, it) for s, it in splits.items()}, classes, attrs)
    log.info(
        "%s: %d train and %d test images, %d classes, %d re-encoded as RGB JPEG",
        output_path, counts["train"], counts["test"], len(classes), attrs["reencoded"],
    )  # fmt: skip
    return counts | {"reencoded": attrs["reencoded"]}
