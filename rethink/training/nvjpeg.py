"""ImageNet's JPEGs decoded and augmented on the training GPU (`training.jpeg_decoder: nvjpeg`):
the loader workers only read each image's bytes and draw its random numbers from the header
(rethink.training.inception_preprocessing.Draws, the CPU decoder's draws); the training
process decodes the batch with nvJPEG (torchvision.io.decode_jpeg), crops, resizes (bilinear,
as TF's resize_images), flips and distorts the colours (TF's HSV saturation and hue) on the
GPU. What differs from the CPU decoder: nvJPEG decodes every image whole (no DCT scaling) and
the resized box is not rounded to 8 bits, a difference of under a level in 255.
"""

import warnings

import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg


def decode_batch(
    data: list[torch.Tensor], draws: torch.Tensor, size: int, device: torch.device
) -> torch.Tensor:
    """JPEG bytes (uint8 tensors on the CPU) and their draws (N x 9, Draws.as_tensor) to the
    N x 3 x size x size network inputs in [-1, 1] on `device`."""
    with warnings.catch_warnings():  # torchvision's decoders are deprecated from 0.29
        warnings.simplefilter("ignore", DeprecationWarning)
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    boxes = []
    for image, (top, left, height, width, flip, *_) in zip(images, draws.tolist(), strict=True):
        box = image[None, :, int(top) : int(top + height), int(left) : int(left + width)]
        x = F.interpolate(box.float(), size=(size, size), mode="bilinear", align_corners=False)
        boxes.append(x.flip(-1) if flip else x)
    x = torch.cat(boxes).div_(255).clamp_(0, 1)
    colour = draws[:, 5:].to(device=device, dtype=torch.float32)
    return distort_color(x, colour) * 2 - 1


def distort_color(x: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """TF's brightness, saturation, hue and contrast on N x 3 x H x W images in [0, 1], each
    image by its row of `colour` (0, 1, 0, 1 leaves it as it is)."""
    brightness, saturation, hue, contrast = (c[:, None, None] for c in colour.unbind(1))
    x = (x + brightness[:, None]).clamp(0, 1)
    v, _ = x.max(dim=1)
    chroma = v - x.min(dim=1).values
    s = torch.where(v > 0, chroma / v.clamp(min=1e-12), 0)
    r, g, b = x.unbind(1)
    c = chroma.clamp(min=1e-12)
    h = torch.where(v == r, (g - b) / c, torch.where(v == g, 2 + (b - r) / c, 4 + (r - g) / c))
    h = torch.where(chroma > 0, (h / 6) % 1, 0)
    h, s = (h + hue) % 1, (s * saturation).clamp(max=1)
    k = (torch.tensor([5.0, 3.0, 1.0], device=x.device)[None, :, None, None] + 6 * h[:, None]) % 6
    x = v[:, None] - (v * s)[:, None] * torch.minimum(k, 4 - k).clamp(0, 1)
    mean = x.mean(dim=(2, 3), keepdim=True)
    return ((x - mean) * contrast[:, None] + mean).clamp(0, 1)
