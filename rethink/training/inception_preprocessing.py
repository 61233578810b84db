"""The Inception preprocessing of ImageNet images (TF-slim's inception_preprocessing), one image
at a time, with its random numbers from a torch.Generator of its own.

Training, under the `augment` regularizer: a random crop covering 10-100% of the image with an
aspect ratio of 3/4 to 4/3 (TF-slim: min_object_covered 0.1, area_range up to 1, 100 attempts,
else the whole image), resized to size x size, a random horizontal flip, and colour distortion:
brightness +-32/255, saturation x0.5-1.5, hue +-0.2 turns and contrast x0.5-1.5, in that order
(TF-slim's ordering 0), clipped to [0, 1]. Otherwise: the central 87.5% of the image resized
to size x size. Both end scaled to [-1, 1], as TF-slim feeds Inception V3.
"""

import io
import math

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

CENTRAL_FRACTION = 0.875
AREA_RANGE = (0.1, 1.0)  # TF-slim's area_range (0.05, 1) under min_object_covered 0.1
ASPECT_RANGE = (3 / 4, 4 / 3)
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


def random_crop_box(h: int, w: int, gen: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop, as TF's sample_distorted_bounding_box."""
    for _ in range(ATTEMPTS):
        area = _uniform(gen, *AREA_RANGE) * h * w
        ratio = math.exp(_uniform(gen, math.log(ASPECT_RANGE[0]), math.log(ASPECT_RANGE[1])))
        width, height = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < width <= w and 0 < height <= h:
            top = int(torch.randint(0, h - height + 1, (), generator=gen))
            left = int(torch.randint(0, w - width + 1, (), generator=gen))
            return top, left, height, width
    return 0, 0, h, w


def distort_color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness, saturation, hue, contrast on a 3 x H x W float image in [0, 1]."""
    # TF-slim clips only at the end; torchvision's saturation and hue take [0, 1] images, so
    # the brightness shift is clipped first [decided].
    x = (x + _uniform(gen, -BRIGHTNESS, BRIGHTNESS)).clamp(0, 1)
    x = F.adjust_saturation(x, _uniform(gen, *SATURATION))
    x = F.adjust_hue(x, _uniform(gen, -HUE, HUE))
    x = F.adjust_contrast(x, _uniform(gen, *CONTRAST))
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
