"""The Inception preprocessing against what TF-slim's inception_preprocessing does, each step
on images whose pixels say where they came from."""

import math

import pytest
import torch

from rethink.training import inception_preprocessing as inception
from rethink.training.inception_preprocessing import (
    AREA_RANGE,
    ASPECT_RANGE,
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


def test_crop_boxes_cover_the_papers_area_and_aspect_and_every_position():
    h, w = 12, 16
    boxes = [random_crop_box(h, w, torch.Generator().manual_seed(s)) for s in range(3000)]
    for top, left, height, width in boxes:
        assert 0 <= top and top + height <= h and 0 <= left and left + width <= w
        # the sampled area and aspect, up to rounding each side to whole pixels
        assert AREA_RANGE[0] * h * w * 0.6 <= height * width <= h * w
        assert ASPECT_RANGE[0] * 0.6 <= width / height <= ASPECT_RANGE[1] / 0.6
    assert min(left for _, left, _, _ in boxes) == 0 and min(top for top, *_ in boxes) == 0
    assert max(left + width for _, left, _, width in boxes) == w
    assert max(top + height for top, _, height, _ in boxes) == h


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
