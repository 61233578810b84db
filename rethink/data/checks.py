"""What a registered corruption or dataset must do, checked before the jobs that depend on it:
each failure is one line naming the entry and the fix (docs/extending.md states the contracts).
"""

import numpy as np

from rethink import RethinkError

# Images a corruption may return: what the HDF5 files store and training reads.
IMAGE_DTYPES = (np.uint8, np.float32)
FIX = "see docs/extending.md"


class ExtensionError(RethinkError):
    """A registered model, corruption or dataset that breaks its contract."""


def check_corruption(name: str, corrupt, image_shape: tuple[int, int, int]) -> None:
    """Run pixel corruption `corrupt` (registered as `name`) on a few random uint8 images of
    `image_shape` (H, W, C): it must return (train, test) images of the shapes it was given,
    uint8 or float32, finite, on the 0-255 scale of its input."""
    rng = np.random.default_rng(0)
    given = {split: rng.integers(0, 256, (n, *image_shape), dtype=np.uint8)
             for split, n in (("train", 6), ("test", 3))}  # fmt: skip
    what = f"pixel corruption '{name}' on 6 train and 3 test uint8 images of {image_shape}"
    try:
        returned = corrupt(given["train"].copy(), given["test"].copy(), rng)
        train, test = returned
    except Exception as err:  # a user's code: say which entry failed, and how
        raise ExtensionError(f"{what}: {type(err).__name__}: {err}; {FIX}") from None
    for split, images in (("train", train), ("test", test)):
        expected = given[split].shape
        if not isinstance(images, np.ndarray):
            raise ExtensionError(
                f"{what}: returned {type(images).__name__} {split} images; return numpy "
                f"arrays N x H x W x C, like its input; {FIX}"
            )
        if images.shape != expected:
            raise ExtensionError(
                f"{what}: returned {split} images of shape {images.shape} for {expected}; keep "
                f"N x H x W x C (channels last), the input's shape; {FIX}"
            )
        if images.dtype not in IMAGE_DTYPES:
            raise ExtensionError(
                f"{what}: returned {images.dtype} {split} images; return uint8 or float32 "
                f"(e.g. images.astype(np.float32)); {FIX}"
            )
        if not np.isfinite(images).all():
            raise ExtensionError(f"{what}: returned NaN or infinite {split} pixels; {FIX}")
        if images.dtype == np.float32 and np.abs(images).max() <= 1:
            raise ExtensionError(
                f"{what}: returned {split} pixels within [-1, 1]; keep the input's 0-255 scale "
                f"(training whitens each image itself); {FIX}"
            )


def check_dataset_size(name: str, declared_shape, declared_size, train_shape, test_shape) -> None:
    """A dataset's loader returned what its registry entry declares: images of (H, W, C), as
    many in all as its (train, test) size (options such as mnist5k's test_per_class move images
    between the two)."""
    loaded = [tuple(train_shape[1:]), tuple(test_shape[1:])]
    total = train_shape[0] + test_shape[0]
    if loaded != [tuple(declared_shape)] * 2 or total != sum(declared_size):
        raise ExtensionError(
            f"dataset '{name}': its loader returned {train_shape[0]} train images of "
            f"{loaded[0]} and {test_shape[0]} test images of {loaded[1]}, its DATASETS entry "
            f"declares {tuple(declared_size)} images of {tuple(declared_shape)}; correct the "
            f"entry's size or image_shape; {FIX}"
        )
