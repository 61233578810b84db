"""The Inception preprocessing against what TF-slim's inception_preprocessing does, each step
on images whose pixels say where they came from."""

import colorsys
import io
import math

import cv2
import numpy as np
import pytest
import scipy.stats
import torch
from PIL import Image

from rethink.training import inception_preprocessing as inception
from rethink.training.inception_preprocessing import (
    Draws,
    adjust_contrast,
    crop_and_resize,
    decode_scale,
    distort_color,
    inception_input,
    random_crop_box,
)


def coordinate_image(h: int, w: int) -> np.ndarray:
    """h x w x 3 uint8: red is the column, green the row, blue constant."""
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([cols, rows, np.full((h, w), 7)], axis=-1).astype(np.uint8)


def encoded(pixels: np.ndarray, format: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=format, **options)
    return out.getvalue()


def test_evaluation_takes_the_central_87_5_percent_scaled_to_minus_1_1():
    """tf.image.central_crop(0.875) of 41 rows: start int((41 - 35.875) / 2) = 2, 37 kept."""
    image = coordinate_image(41, 41)
    x = inception_input(encoded(image), 37, augment=False)  # at its own size: no resampling
    top = left = 2
    expected = image[top : top + 37, left : left + 37].astype(np.float32) / 255 * 2 - 1
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), expected, atol=1e-6)


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


def test_augmentation_flips_left_to_right_only(monkeypatch):
    monkeypatch.setattr(inception, "random_crop_box", lambda h, w, gen: (0, 0, h, w))
    monkeypatch.setattr(inception, "distort_color", lambda x, colour: x)
    image = coordinate_image(16, 16)
    plain = torch.from_numpy(image.astype(np.float32) / 255 * 2 - 1).permute(2, 0, 1)
    outputs = [
        inception_input(encoded(image), 16, True, torch.Generator().manual_seed(s))
        for s in range(40)
    ]
    flipped = [torch.allclose(x, plain.flip(-1), atol=1e-6) for x in outputs]
    assert all(
        f or torch.allclose(x, plain, atol=1e-6) for f, x in zip(flipped, outputs, strict=True)
    )
    assert 5 < sum(flipped) < 35  # a coin per image


def tf_distort_color(x: np.ndarray, draws: list[float]) -> np.ndarray:
    """TF-slim's distort_color, ordering 0, pixel by pixel with Python's colorsys (TF's HSV):
    adjust_brightness (clipped here, as ours), adjust_saturation (S scaled, clipped to 1),
    adjust_hue (h + delta modulo 1), adjust_contrast (each channel about its mean), clipped."""
    brightness, saturation, hue, contrast = draws
    out = np.clip(x.astype(np.float64) + brightness, 0, 1)
    for index in np.ndindex(out.shape[:2]):
        h, s, v = colorsys.rgb_to_hsv(*out[index])
        out[index] = colorsys.hsv_to_rgb((h + hue) % 1.0, min(s * saturation, 1.0), v)
    mean = out.mean(axis=(0, 1))
    return np.clip((out - mean) * contrast + mean, 0, 1)


@pytest.mark.parametrize("seed", range(6))
def test_colour_distortion_is_tfs(seed):
    """On a random 24 x 40 image (large enough for OpenCV's vectorized paths), against TF's four
    ops written out with the same draws (brightness +-32/255, saturation x0.5-1.5, hue +-0.2
    turns, four of them negative here, contrast x0.5-1.5)."""
    x = np.random.default_rng(seed).random((24, 40, 3)).astype(np.float32)
    gen = torch.Generator().manual_seed(seed)
    bounds = [(-32 / 255, 32 / 255), (0.5, 1.5), (-0.2, 0.2), (0.5, 1.5)]
    draws = [low + (high - low) * torch.rand((), generator=gen).item() for low, high in bounds]
    ours = distort_color(x.copy(), draws)
    np.testing.assert_allclose(ours, tf_distort_color(x, draws), atol=1e-5)
    assert ours.min() >= 0 and ours.max() <= 1


def test_contrast_scales_each_channel_about_its_own_mean():
    """tf.image.adjust_contrast: (x - mean) * factor + mean, the mean per channel."""
    x = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    x[..., 0] *= 0.2  # channels with different means, where one grey mean would shift colours
    mean = x.mean(axis=(0, 1))
    np.testing.assert_allclose(adjust_contrast(x, 1.4), (x - mean) * 1.4 + mean, atol=1e-6)


def test_a_large_jpeg_decoded_at_a_smaller_dct_scale_gives_the_full_decodes_output(monkeypatch):
    """A 1,200 x 1,600 photograph-like JPEG, a box of 700 x 900: decoded at half scale (the
    box stays above 299 on each side), its 299 x 299 input is the full decode's, resized the
    same way, up to JPEG's own scaling error (a mean of under 1 level in 255)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
    scene = np.asarray(Image.fromarray(coarse).resize((1600, 1200), Image.BICUBIC))
    data = encoded(scene, "JPEG", quality=90)
    monkeypatch.setattr(inception, "random_crop_box", lambda h, w, gen: (200, 300, 700, 900))
    assert decode_scale(700, 900, 299) == 2 and decode_scale(500, 900, 299) == 1
    fast, draws = crop_and_resize(data, 299, True, None)
    assert draws.box == (200, 300, 700, 900)
    with Image.open(io.BytesIO(data)) as image:
        full = np.asarray(image)[200:900, 300:1200]
    reference = cv2.resize(full, (299, 299), interpolation=cv2.INTER_LINEAR)
    difference = np.abs(fast.astype(float) - reference)
    assert difference.mean() < 1 and np.percentile(difference, 99) < 6


def test_an_images_draws_come_in_tfs_order_from_its_generator():
    """Box, flip, then brightness, saturation, hue, contrast, each in its range; evaluation:
    the central 87.5% and nothing random."""
    gen, replay = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    draws = Draws.of(375, 500, True, gen)
    assert draws.box == random_crop_box(375, 500, replay)
    assert draws.flip == (torch.rand((), generator=replay).item() < 0.5)
    bounds = [(-32 / 255, 32 / 255), (0.5, 1.5), (-0.2, 0.2), (0.5, 1.5)]
    expected = [lo + (hi - lo) * torch.rand((), generator=replay).item() for lo, hi in bounds]
    assert draws.colour == pytest.approx(expected)
    assert Draws.of(375, 500, False, None) == Draws((23, 31, 329, 438))  # TF's central_crop
    assert Draws.of(375, 500, False, None).as_tensor().tolist() == [23, 31, 329, 438, 0, 0, 1, 0, 1]


def test_odd_sized_jpegs_are_decoded_at_the_scale_their_box_allows():
    """1,025 x 683: a box of 650 x 1,000 allows half scale; Pillow must be asked for it so
    that it does not fall back to the full size (683 // 342 would be 1)."""
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    data = encoded(np.asarray(Image.fromarray(coarse).resize((1025, 683))), "JPEG", quality=90)
    decoded = []
    real_asarray = inception.np.asarray

    def watch(image, *args, **kwargs):
        decoded.append(image.size)
        return real_asarray(image, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inception, "random_crop_box", lambda h, w, gen: (10, 10, 650, 1000))
        patch.setattr(inception.np, "asarray", watch)
        pixels, _ = crop_and_resize(data, 299, True, None)
    assert decoded == [(513, 342)] and pixels.shape == (299, 299, 3)
