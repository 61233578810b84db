"""The Inception preprocessing of ImageNet images, one image at a time, with its random numbers
from a torch.Generator of its own: TF-slim's inception_preprocessing with fast_mode off (the
Inception package's distort_color, ordering 0; slim's default fast mode keeps brightness and
saturation only), as PAPER.md's section 8 lists it.

Training, under the `augment` regularizer: a crop box drawn as TF's
sample_distorted_bounding_box draws it (`random_crop_box`), resized to size x size, a random
horizontal flip, and colour distortion: brightness +-32/255, saturation x0.5-1.5, hue +-0.2
turns and contrast x0.5-1.5 towards each channel's mean, in that order (TF-slim's ordering 0;
saturation and hue in HSV, as TF's), clipped to [0, 1]. Otherwise: the central 87.5% of the
image resized to size x size. Both end scaled to [-1, 1], as TF-slim feeds Inception V3.

Fast, as loaders such as DALI and FFCV are, by decoding less: the box is drawn from the JPEG's
header, before any pixel is decoded, and libjpeg decodes at the smallest DCT scale (1/2, 1/4 or
1/8 of each side) that leaves the box at least size x size; the box is resized in uint8 and
the colour distortion runs on the 299x299 result, both in OpenCV.
"""

import io
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

cv2.setNumThreads(1)  # a loader worker is one core (the jobs' threads count them so)

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


def decode_scale(height: int, width: int, size: int) -> int:
    """The largest JPEG DCT reduction (1, 2, 4 or 8) that keeps a height x width box at least
    size x size."""
    return next(scale for scale in (8, 4, 2, 1) if min(height, width) >= size * scale or scale == 1)


@dataclass(frozen=True)
class Draws:
    """One image's random numbers, drawn in TF's order before any pixel is decoded: the crop
    box (top, left, height, width) and, under `augment`, the flip and the four colour factors
    (brightness, saturation, hue, contrast). Both decoders apply the same draws."""

    box: tuple[int, int, int, int]
    flip: bool = False
    colour: tuple[float, float, float, float] | None = None

    @classmethod
    def of(cls, h: int, w: int, augment: bool, gen: torch.Generator | None) -> "Draws":
        """The draws for an h x w image: random under `augment`, else the central crop."""
        if not augment:  # tf.image.central_crop: the start truncated, the rest kept
            top, left = int((h - h * CENTRAL_FRACTION) / 2), int((w - w * CENTRAL_FRACTION) / 2)
            return cls((top, left, h - 2 * top, w - 2 * left))
        box = random_crop_box(h, w, gen)
        flip = torch.rand((), generator=gen).item() < 0.5
        ranges = [(-BRIGHTNESS, BRIGHTNESS), SATURATION, (-HUE, HUE), CONTRAST]
        return cls(box, flip, tuple(_uniform(gen, *bounds) for bounds in ranges))

    def as_tensor(self) -> torch.Tensor:
        """The draws as 9 numbers (no colour: saturation and contrast 1, the rest 0)."""
        return torch.tensor([*self.box, self.flip, *(self.colour or (0.0, 1.0, 0.0, 1.0))],
                            dtype=torch.float64)  # fmt: skip


def draws_of(data: bytes, size: int, augment: bool, gen) -> Draws:
    """The draws for the JPEG `data`, from its header alone."""
    with Image.open(io.BytesIO(data)) as image:
        w, h = image.size
    return Draws.of(h, w, augment, gen)


def crop_and_resize(data: bytes, size: int, augment: bool, gen) -> tuple[np.ndarray, Draws]:
    """The box of the JPEG `data` (random, or central), decoded at the scale it needs and
    resized to size x size, bilinear as TF's resize_images (size x size x 3 uint8); and the
    image's draws. The DCT scale leaves a box under twice the output's side, so no
    antialiasing is needed."""
    with Image.open(io.BytesIO(data)) as image:
        w, h = image.size  # from the header: nothing decoded yet
        draws = Draws.of(h, w, augment, gen)
        top, left, height, width = draws.box
        scale = decode_scale(height, width, size)
        if scale > 1:  # Pillow picks the scale min(w // asked width, h // asked height)
            image.draft("RGB", (w // scale, h // scale))
        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    sy, sx = pixels.shape[0] / h, pixels.shape[1] / w
    box = pixels[round(top * sy) : round((top + height) * sy),
                 round(left * sx) : round((left + width) * sx)]  # fmt: skip
    return cv2.resize(box, (size, size), interpolation=cv2.INTER_LINEAR), draws


def distort_color(x: np.ndarray, colour: tuple[float, float, float, float]) -> np.ndarray:
    """Brightness, saturation, hue, contrast, by the factors `colour`, on an H x W x 3 float32
    image in [0, 1], as TF computes each."""
    brightness, saturation, hue, contrast = colour
    # TF-slim clips only at the end; HSV needs [0, 1] images, so the brightness shift is
    # clipped first [decided].
    x = cv2.add(x, (brightness,) * 3 + (0,))
    np.clip(x, 0, 1, out=x)
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # hue in degrees, saturation and value in [0, 1]
    # tf.image.adjust_saturation: saturation scaled and clipped to 1; tf.image.adjust_hue: the
    # hue turned, a negative turn as the positive one that equals it (OpenCV's vectorized
    # conversion wraps hues past 360 degrees, not below 0).
    hsv = cv2.multiply(hsv, (1, saturation, 1, 0))
    hsv = cv2.add(hsv, ((360 * hue) % 360, 0, 0, 0))
    hsv = cv2.min(hsv, (np.inf, 1, np.inf, 0))
    x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    x = adjust_contrast(x, contrast)
    return np.clip(x, 0, 1, out=x)


def adjust_contrast(x: np.ndarray, factor: float) -> np.ndarray:
    """tf.image.adjust_contrast: each channel of an H x W x 3 image scaled about its own mean
    over the image (torchvision's scales every channel about one grey mean)."""
    mean = cv2.mean(x)[:3]
    return cv2.add(
        cv2.multiply(x, (factor,) * 3 + (0,)), tuple((1 - factor) * m for m in mean) + (0,)
    )


def inception_input(
    data: bytes, size: int, augment: bool, gen: torch.Generator | None = None
) -> torch.Tensor:
    """A JPEG file's bytes to the 3 x size x size float32 network input in [-1, 1]."""
    pixels, draws = crop_and_resize(data, size, augment, gen)
    x = pixels.astype(np.float32)
    x *= np.float32(1 / 255)
    if draws.flip:
        x = cv2.flip(x, 1)
    if draws.colour:
        x = distort_color(x, draws.colour)
    x *= 2
    x -= 1
    return torch.from_numpy(x).permute(2, 0, 1)  # channels last, as the models train
