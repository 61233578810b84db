"""The Inception preprocessing against what TF-slim's inception_preprocessing does, each step
on images whose pixels say where they came from."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from rethink.training import inception_preprocessing as inception
from rethink.training.inception_preprocessing import (
    adjust_contrast,
    distort_color,
    inception_input,
    random_crop_box,
)


def coordinate_image(h: int, w: int) -> torch.Tensor:
    """3 x h x w uint8: red is the column, green the row, blue constant."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([cols, rows, torch.full((h, w), 7)]).to(torch.uint8)


def test_evaluation_takes_the_central_87_5_percent_scaled_to_minus_1_1():
    image = coordinate_image(41, 41)  # the central round(0.875 x 41) = 36 rows and columns
    x = inception_input(image, 36, augment=False)  # at its own size: no resampling
    top = left = (41 - 36) // 2
    expected = (image[:, top : top + 36, left : left + 36].float() / 255 - 0.5) * 2
    torch.testing.assert_close(x, expected)


def tf_crop_box(h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """TF's sample_distorted_bounding_box as tensorflow/core/kernels/image/
    sample_distorted_bounding_box_op.cc computes it, transliterated line by line in float32,
    with TF-slim's arguments: the whole image as the object box, min_object_covered 0.1,
    aspect_ratio_range (0.75, 1.33), area_range (0.05, 1.0), max_attempts 100."""
    f32 = np.float32
    min_area, max_area = f32(0.05) * f32(w) * f32(h), f32(1.0) * f32(w) * f32(h)
    for _ in range(100):
        aspect_ratio = f32(rng.random()) * (f32(1.33) - f32(0.75)) + f32(0.75)
        # GenerateRandomCrop
        height = int(np.rint(np.sqrt(min_area / aspect_ratio)))
        max_height = int(np.rint(np.sqrt(max_area / aspect_ratio)))
        if int(np.rint(max_height * aspect_ratio)) > w:
            max_height = int((w + 0.5 - 0.0000001) / aspect_ratio)
            if int(np.rint(max_height * aspect_ratio)) > w:
                max_height -= 1
        if max_height > h:
            max_height = h
        if height >= max_height:
            height = max_height
        if height < max_height:
            height += int(rng.integers(max_height - height + 1))
        width = int(np.rint(height * aspect_ratio))
        area = f32(width * height)
        if area < min_area:
            height += 1
            width = int(np.rint(height * aspect_ratio))
            area = f32(width * height)
        if area > max_area:
            height -= 1
            width = int(np.rint(height * aspect_ratio))
            area = f32(width * height)
        if (
            area < min_area
            or area > max_area
            or width > w
            or height > h
            or width <= 0
            or height <= 0
        ):
            continue
        y = int(rng.integers(h - height)) if height < h else 0
        x = int(rng.integers(w - width)) if width < w else 0
        # SatisfiesOverlapConstraints against the whole image
        if width * height >= 1 and width * height / (w * h) >= 0.1:
            return y, x, height, width
    return 0, 0, h, w


def crop_statistics(boxes, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Each box's area as a fraction of the image, and its aspect ratio (width / height)."""
    boxes = np.array(boxes)
    return boxes[:, 2] * boxes[:, 3] / (h * w), boxes[:, 3] / boxes[:, 2]


@pytest.mark.parametrize(("h", "w"), [(375, 500), (500, 375), (333, 333), (120, 900)])
def test_crop_boxes_follow_tfs_sample_distorted_bounding_box(h, w):
    """20,000 boxes of ours against 20,000 of the transliteration: the distributions of area
    and aspect ratio may not differ (two-sample Kolmogorov-Smirnov)."""
    ours = [random_crop_box(h, w, torch.Generator().manual_seed(s)) for s in range(20000)]
    rng = np.random.default_rng(0)
    theirs = [tf_crop_box(h, w, rng) for _ in range(20000)]
    for our, their in zip(crop_statistics(ours, h, w), crop_statistics(theirs, h, w), strict=True):
        assert scipy.stats.ks_2samp(our, their).pvalue > 1e-3
    for top, left, height, width in ours:  # TF's offsets: [0, h - height), never the last row
        assert 0 <= top and top + height <= h and 0 <= left and left + width <= w
        assert (top + height < h or height == h) and (left + width < w or width == w)
    area, aspect = crop_statistics(ours, h, w)
    assert area.min() >= 0.1 and 0.75 - 1 / 50 < aspect.min() and aspect.max() < 1.33 + 1 / 50
    if (h, w) == (375, 500):  # an ILSVRC-sized image: the mean area TF's sampler gives
        assert abs(area.mean() - 0.388) < 3 * area.std() / math.sqrt(len(area))


def test_a_box_that_fits_no_attempt_falls_back_to_the_whole_image():
    """10 x 1000: no box of ratio 0.75-1.33 covers 10% of it, in TF's sampler or ours."""
    assert tf_crop_box(10, 1000, np.random.default_rng(0)) == (0, 0, 10, 1000)
    assert random_crop_box(10, 1000, torch.Generator().manual_seed(0)) == (0, 0, 10, 1000)


def test_contrast_scales_each_channel_about_its_own_mean():
    """tf.image.adjust_contrast: (x - mean) * factor + mean, the mean per channel."""
    x = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    x[0] *= 0.2  # channels with different means, where one grey mean would shift colours
    pixels = x.numpy()
    mean = pixels.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(
        adjust_contrast(x, 1.4).numpy(), (pixels - mean) * 1.4 + mean, atol=1e-6
    )
    torch.testing.assert_close(adjust_contrast(x, 1.4).mean(dim=(1, 2)), x.mean(dim=(1, 2)))


def test_augmentation_flips_left_to_right_only(monkeypatch):
    monkeypatch.setattr(inception, "random_crop_box", lambda h, w, gen: (0, 0, h, w))
    monkeypatch.setattr(inception, "distort_color", lambda x, gen: x)
    image = coordinate_image(16, 16)
    plain = (image.float() / 255 - 0.5) * 2
    outputs = [
        inception_input(image, 16, True, torch.Generator().manual_seed(s)) for s in range(40)
    ]
    flipped = [torch.equal(x, plain.flip(-1)) for x in outputs]
    assert all(f or torch.equal(x, plain) for f, x in zip(flipped, outputs, strict=True))
    assert 5 < sum(flipped) < 35  # a coin per image


@pytest.mark.parametrize("value", [0.0, 0.98, 1.0])
def test_colour_distortion_stays_within_0_1_at_every_step(value, monkeypatch):
    """TF-slim clips once, at the end; torchvision's saturation and hue expect [0, 1] images,
    so the brightness shift is clipped before them."""
    seen = []
    saturation = inception.F.adjust_saturation

    def watched(x, factor):
        seen.append((x.min().item(), x.max().item()))
        return saturation(x, factor)

    monkeypatch.setattr(inception.F, "adjust_saturation", watched)
    image = torch.full((3, 8, 8), value)
    image[0, :4] = 0.5
    for seed in range(20):
        out = distort_color(image, torch.Generator().manual_seed(seed))
        assert out.min() >= 0 and out.max() <= 1
    assert all(0 <= low and high <= 1 for low, high in seen)
    shifts = [high - max(value, 0.5) for _, high in seen]  # the brightest pixel's, clipped
    assert max(abs(shift) for shift in shifts) <= 32 / 255 + 1e-6
    assert not math.isclose(min(shifts), max(shifts))  # a random shift per call
