"""The Inception preprocessing of ImageNet images (TF-slim's inception_preprocessing), one image
at a time, with its random numbers from a torch.Generator of its own.

Training, under the `augment` regularizer: a crop box drawn as TF's
sample_distorted_bounding_box draws it (`random_crop_box`), resized to size x size, a random
horizontal flip, and colour distortion: brightness +-32/255, saturation x0.5-1.5, hue +-0.2
turns and contrast x0.5-1.5 towards each channel's mean, in that order (TF-slim's ordering 0),
clipped to [0, 1]. Otherwise: the central 87.5% of the image resized to size x size. Both end
scaled to [-1, 1], as TF-slim feeds Inception V3.
"""

import io
import math

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

CENTRAL_FRACTION = 0.875
# TF-slim's distorted_bounding_box_crop: the whole image as the object box, of which a crop
# must cover 10%, crops of 5-100% of the image offered, aspect ratios (width / height) of
# 0.75-1.33, up to 100 attempts, else the whole image.
MIN_OBJECT_COVERED = 0.1
AREA_RANGE = (0.05, 1.0)
ASPECT_RANGE = (0.75, 1.33)
ATTEMPTS = 100
BRIGHTNESS = 32 / 255
SATURATION = (0.5, 1.5)
HUE = 0.2
CONTRAST = (0.5, 1.5)


def decode(data: bytes) -> torch.Tensor:
    """JPEG bytes to a 3 x H x W uint8 tensor (Pillow's libjpeg-turbo; torchvision's decoder
    is deprecated from 0.29)."""
    with Image.open(io.BytesIO(data)) as image:
        pixels = np.array(image.convert("RGB"))  # a writable copy
    return torch.from_numpy(pixels).permute(2, 0, 1)


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=gen).item()


def _below(gen: torch.Generator, n: int) -> int:
    """An integer uniform in [0, n), as TF's random Uniform(n)."""
    return int(torch.randint(0, n, (), generator=gen))


def random_crop_box(h: int, w: int, gen: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop of an h x w image, as TF's
    sample_distorted_bounding_box draws it (tensorflow/core/kernels/image/
    sample_distorted_bounding_box_op.cc): per attempt an aspect ratio uniform in ASPECT_RANGE,
    then a height uniform over the whole pixels whose area, at that ratio, AREA_RANGE allows;
    kept if it covers MIN_OBJECT_COVERED of the image."""
    for _ in range(ATTEMPTS):
        ratio = _uniform(gen, *ASPECT_RANGE)
        box = _crop_at_ratio(h, w, ratio, gen)
        if box is not None and box[2] * box[3] >= MIN_OBJECT_COVERED * h * w:
            return box
    return 0, 0, h, w


def _crop_at_ratio(h: int, w: int, ratio: float, gen: torch.Generator):
    """TF's GenerateRandomCrop: None where no whole-pixel box of this ratio fits the area."""
    min_area, max_area = AREA_RANGE[0] * h * w, AREA_RANGE[1] * h * w
    height = round(math.sqrt(min_area / ratio))  # round half to even, as C's lrintf
    max_height = round(math.sqrt(max_area / ratio))
    if round(max_height * ratio) > w:  # the tallest box whose width still fits
        max_height = int((w + 0.5 - 1e-7) / ratio)
        if round(max_height * ratio) > w:
            max_height -= 1
    max_height = min(max_height, h)
    height = min(height, max_height)
    height += _below(gen, max_height - height + 1)
    width = round(height * ratio)
    if width * height < min_area:  # rounding: one row more, or one fewer
        height += 1
        width = round(height * ratio)
    if width * height > max_area:
        height -= 1
        width = round(height * ratio)
    if not (min_area <= width * height <= max_area and 0 < width <= w and 0 < height <= h):
        return None
    # Offsets in [0, h - height), as TF draws them: a smaller box never touches the last row
    # or column.
    top = _below(gen, h - height) if height < h else 0
    left = _below(gen, w - width) if width < w else 0
    return top, left, height, width


def adjust_contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """tf.image.adjust_contrast: each channel scaled about its own mean over the image
    (torchvision's scales every channel about one grey mean)."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return (x - mean) * factor + mean


def distort_color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness, saturation, hue, contrast on a 3 x H x W float image in [0, 1]."""
    # TF-slim clips only at the end; torchvision's saturation and hue take [0, 1] images, so
    # the brightness shift is clipped first [decided].
    x = (x + _uniform(gen, -BRIGHTNESS, BRIGHTNESS)).clamp(0, 1)
    x = F.adjust_saturation(x, _uniform(gen, *SATURATION))
    x = F.adjust_hue(x, _uniform(gen, -HUE, HUE))
    x = adjust_contrast(x, _uniform(gen, *CONTRAST))
    return x.clamp(0, 1)


def inception_input(
    image: torch.Tensor, size: int, augment: bool, gen: torch.Generator | None = None
) -> torch.Tensor:
    """A 3 x H x W uint8 image to the 3 x size x size float32 network input in [-1, 1]."""
    h, w = image.shape[-2:]
    if augment:
        top, left, height, width = random_crop_box(h, w, gen)
    else:
        height, width = round(h * CENTRAL_FRACTION), round(w * CENTRAL_FRACTION)
        top, left = (h - height) // 2, (w - width) // 2
    x = F.resized_crop(
        image.float() / 255, top, left, height, width, [size, size], antialias=True
    ).clamp(0, 1)
    if augment:
        if torch.rand((), generator=gen).item() < 0.5:
            x = x.flip(-1)
        x = distort_color(x, gen)
    return (x - 0.5) * 2
