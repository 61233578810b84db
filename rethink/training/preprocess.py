"""Batched preprocessing and augmentation on the device (Zhang et al. 2017, Section 1).

Images arrive as a uint8 (or float32) tensor B x C x H x W on the raw 0-255 scale and leave as
float32: / 255, a 28x28 crop (center, or random under the `crop` regularizer), then per-image
whitening as TensorFlow's per_image_standardization. Random numbers come from one
torch.Generator on the images' device, so runs are reproducible and resumable.
"""

import functools
import math

import torch

RANDOM_CROP_SHIFT = 2  # pixels: CIFAR-10's 32 -> 28 crop moves the window up to 2 px each way


def per_image_standardization(x: torch.Tensor) -> torch.Tensor:
    """(x - mean(x)) / max(std(x), 1 / sqrt(N)) per image, N values per image, population std."""
    n = x[0].numel()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True, correction=0)
    return (x - mean) / std.clamp_min(1.0 / math.sqrt(n))


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"cannot crop {h}x{w} images to {size}x{size}")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def random_crop(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """An independent random size x size window per image.

    Images no larger than the window are zero-padded first, by RANDOM_CROP_SHIFT on each side,
    so that a 28x28 MNIST digit moves as much as a crop of a 32x32 CIFAR-10 image does.
    """
    b, c, h, w = x.shape
    pad = RANDOM_CROP_SHIFT if min(h, w) <= size else 0
    if pad:
        x = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        h, w = h + 2 * pad, w + 2 * pad
    top = torch.randint(0, h - size + 1, (b,), generator=gen, device=x.device)
    left = torch.randint(0, w - size + 1, (b,), generator=gen, device=x.device)
    window = torch.arange(size, device=x.device)
    rows = (top[:, None] + window)[:, None, :, None]
    cols = (left[:, None] + window)[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return x[batch, channel, rows, cols]


def _uniform(b: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(b, generator=gen, device=device) * (high - low) + low)[:, None, None, None]


# RGB -> YIQ: a hue shift is a rotation of the (I, Q) chroma plane.
_YIQ = [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]


@functools.cache
def yiq_matrices(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB -> YIQ and its inverse on `device`, made once per device: copying them there, or
    inverting on a GPU, in every step would wait for the device."""
    to_yiq = torch.tensor(_YIQ, dtype=torch.float64)
    return to_yiq.float().to(device), torch.linalg.inv(to_yiq).float().to(device)


# Ranges of the per-image colour jitter: TensorFlow's CIFAR-10 tutorial for brightness (a shift
# of +-63/255) and contrast (x0.2-1.8), common practice for saturation (x0.5-1.5) and hue
# (+-0.1 of the colour circle). Drawn uniformly, in this order.
JITTER_RANGES = {
    "brightness": (-63 / 255, 63 / 255),
    "saturation": (0.5, 1.5),
    "hue": (-0.1, 0.1),  # turns
    "contrast": (0.2, 1.8),
}


def draw_jitter(b: int, gen: torch.Generator, device) -> dict[str, torch.Tensor]:
    """Each image's jitter parameters, B x 1 x 1 x 1 each, uniform over JITTER_RANGES."""
    return {
        name: _uniform(b, low, high, gen, device) for name, (low, high) in JITTER_RANGES.items()
    }


def turn_hue(x: torch.Tensor, hue: torch.Tensor, saturation: torch.Tensor) -> torch.Tensor:
    """RGB images with their chroma, the (I, Q) plane of YIQ, turned by `hue` turns and scaled
    by `saturation`; luma Y unchanged."""
    to_yiq, from_yiq = yiq_matrices(x.device)
    y, i, q = torch.einsum("ij,bjhw->ibhw", to_yiq, x)
    angle = hue[:, 0] * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    turned_i = (i * cos - q * sin) * saturation[:, 0]
    turned_q = (i * sin + q * cos) * saturation[:, 0]
    return torch.einsum("ij,jbhw->bihw", from_yiq, torch.stack([y, turned_i, turned_q]))


def scale_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Each channel's deviations from its mean over the image, times `factor`."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * factor + mean


def color_jitter(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-image brightness, saturation, hue and contrast perturbations on [0, 1] images (hue and
    saturation on RGB images only)."""
    jitter = draw_jitter(len(x), gen, x.device)
    x = x + jitter["brightness"]
    if x.shape[1] == 3:
        x = turn_hue(x, jitter["hue"], jitter["saturation"])
    return scale_contrast(x, jitter["contrast"])


def preprocess(
    images: torch.Tensor,
    size: int,
    *,
    crop: bool = False,
    augment: bool = False,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """Raw images (B x C x H x W, 0-255) to whitened float32 network inputs.

    `crop`: a random window instead of the center one. `augment`: random crop, horizontal flip
    and colour jitter.
    """
    x = images.float() / 255
    if crop or augment:
        x = random_crop(x, size, gen)
    else:
        x = center_crop(x, size)
    if augment:
        flip = torch.rand(len(x), generator=gen, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        x = color_jitter(x, gen)
    return per_image_standardization(x)
