import math

import numpy as np
import pytest
import torch
from scipy import stats

from rethink.training.preprocess import (
    JITTER_RANGES,
    center_crop,
    color_jitter,
    draw_jitter,
    per_image_standardization,
    preprocess,
    random_crop,
    scale_contrast,
    turn_hue,
    yiq_matrices,
)


def tf_per_image_standardization(image: np.ndarray) -> np.ndarray:
    """TensorFlow's documented formula, written independently in numpy."""
    n = image.size
    adjusted_std = max(image.std(), 1.0 / math.sqrt(n))
    return (image - image.mean()) / adjusted_std


def test_whitening_matches_the_tensorflow_formula():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (5, 3, 28, 28)).astype(np.float32)
    ours = per_image_standardization(torch.from_numpy(images)).numpy()
    for image, whitened in zip(images, ours, strict=True):
        expected = tf_per_image_standardization(image.astype(np.float64))
        np.testing.assert_allclose(whitened, expected, rtol=1e-4, atol=1e-5)
        assert whitened.mean() == pytest.approx(0, abs=1e-5)
        assert whitened.std() == pytest.approx(1, abs=1e-4)


def test_whitening_floors_the_std_at_one_over_sqrt_n():
    n = 3 * 28 * 28
    constant = torch.full((1, 3, 28, 28), 0.5)
    assert torch.equal(per_image_standardization(constant), torch.zeros_like(constant))
    nearly = constant.clone()
    nearly[0, 0, 0, 0] += 1e-4  # std far below 1/sqrt(2352) = 0.0206
    out = per_image_standardization(nearly)
    expected = (nearly - nearly.mean()) * math.sqrt(n)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-6)


def test_center_crop_takes_the_middle_28_of_32():
    x = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32)
    crop = center_crop(x, 28)
    assert crop.shape == (1, 1, 28, 28) and crop[0, 0, 0, 0] == 2 * 32 + 2


def test_center_crop_refuses_images_smaller_than_the_window_in_either_side():
    for shape in [(1, 1, 32, 20), (1, 1, 20, 32)]:
        with pytest.raises(ValueError, match="cannot crop"):
            center_crop(torch.zeros(shape), 28)


def test_random_crop_windows_cover_every_offset_and_differ_per_image():
    x = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32).repeat(2000, 3, 1, 1)
    gen = torch.Generator().manual_seed(0)
    crops = random_crop(x, 28, gen)
    corner = crops[:, 0, 0, 0].long()
    offsets = set(zip((corner // 32).tolist(), (corner % 32).tolist(), strict=True))
    assert offsets == {(r, c) for r in range(5) for c in range(5)}
    torch.testing.assert_close(crops[:, 1], crops[:, 0])  # channels move together


def test_random_crop_pads_images_no_larger_than_the_window():
    x = torch.ones(500, 1, 28, 28)
    crops = random_crop(x, 28, torch.Generator().manual_seed(0))
    assert crops.shape == (500, 1, 28, 28)
    assert (crops == 0).any() and (crops[:, :, 2:-2, 2:-2] == 1).all()


def test_preprocess_is_reproducible_and_augment_perturbs_each_image():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    plain = preprocess(images, 28)
    assert plain.shape == (64, 3, 28, 28) and plain.dtype == torch.float32

    def augmented(seed):
        return preprocess(images, 28, augment=True, gen=torch.Generator().manual_seed(seed))

    torch.testing.assert_close(augmented(1), augmented(1))
    assert not torch.allclose(augmented(1), augmented(2))
    assert torch.isfinite(augmented(1)).all()
    means = augmented(1).mean(dim=(1, 2, 3))
    torch.testing.assert_close(means, torch.zeros(64), atol=1e-5, rtol=0)


def test_float_gaussian_images_go_through_the_same_path():
    images = torch.randn(8, 1, 28, 28) * 78 + 33  # the gaussian variant's float32 pixels
    out = preprocess(images, 28)
    torch.testing.assert_close(out.std(dim=(1, 2, 3), correction=0), torch.ones(8))


def test_augment_flips_half_the_images_and_crops_at_every_offset():
    """docs/science.md: `augment` is a random crop, a horizontal flip and colour jitter. On
    one-channel images the jitter is brightness and contrast, which the whitening undoes
    exactly, so every output is the whitened crop of the image, or of its mirror image, at one
    of the 25 offsets of a 28x28 window in 32x32: which one is read off."""
    image = torch.randint(0, 256, (1, 1, 32, 32), generator=torch.Generator().manual_seed(0))
    n = 1000
    out = preprocess(
        image.repeat(n, 1, 1, 1), 28, augment=True, gen=torch.Generator().manual_seed(1)
    )
    candidates = {
        (flipped, top, left): per_image_standardization(
            (image.flip(3) if flipped else image)[..., top : top + 28, left : left + 28] / 255
        )[0]
        for flipped in (False, True)
        for top in range(5)
        for left in range(5)
    }
    distance = (out[:, None] - torch.stack(list(candidates.values()))[None]).abs().amax((2, 3, 4))
    assert distance.min(dim=1).values.max() < 1e-4  # each output is one of the candidates
    found = [list(candidates)[i] for i in distance.argmin(dim=1).tolist()]
    flipped = sum(f for f, _, _ in found)
    low, high = stats.binom.interval(0.999, n, 0.5)
    assert low <= flipped <= high
    assert {(top, left) for _, top, left in found} == {(t, c) for t in range(5) for c in range(5)}


def test_the_colour_space_matrices_are_made_once_per_device(monkeypatch):
    """Under `augment`, a step must not wait for the device: the RGB -> YIQ matrix and its
    inverse are computed and copied once, not in every step."""
    yiq_matrices.cache_clear()
    inversions = []
    real_inv = torch.linalg.inv
    monkeypatch.setattr(torch.linalg, "inv", lambda m: inversions.append(1) or real_inv(m))
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    for seed in range(3):
        preprocess(images, 28, augment=True, gen=torch.Generator().manual_seed(seed))
    assert len(inversions) == 1
    to_yiq, from_yiq = yiq_matrices(torch.device("cpu"))
    torch.testing.assert_close(from_yiq @ to_yiq, torch.eye(3), atol=1e-6, rtol=0)


def test_jitter_parameters_are_uniform_over_the_ranges_readme_gives():
    n = 20_000
    jitter = draw_jitter(n, torch.Generator().manual_seed(0), "cpu")
    assert list(jitter) == ["brightness", "saturation", "hue", "contrast"]
    readme = {"brightness": (-63 / 255, 63 / 255), "saturation": (0.5, 1.5), "hue": (-0.1, 0.1),
              "contrast": (0.2, 1.8)}  # fmt: skip
    assert JITTER_RANGES == readme
    for name, (low, high) in readme.items():
        values = jitter[name].flatten().double().numpy()
        assert jitter[name].shape == (n, 1, 1, 1)
        assert low <= values.min() < low + 1e-3 * (high - low)  # the whole range, no more
        assert high - 1e-3 * (high - low) < values.max() <= high
        assert stats.kstest(values, stats.uniform(low, high - low).cdf).pvalue > 1e-3


# RGB -> YIQ (NTSC), written here independently of the package's matrix.
NTSC_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def test_hue_turns_the_chroma_and_saturation_scales_it_keeping_luma():
    x = torch.rand(6, 3, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    hue = torch.tensor([0.0, 0.05, -0.05, 0.1, -0.1, 0.25], dtype=torch.float64)[
        :, None, None, None
    ]
    saturation = torch.tensor([1.0, 1.0, 0.5, 1.5, 1.2, 0.8], dtype=torch.float64)[
        :, None, None, None
    ]
    out = turn_hue(x.float(), hue.float(), saturation.float()).double().numpy()
    before = np.einsum("ij,bjhw->bihw", NTSC_YIQ, x.numpy())
    after = np.einsum("ij,bjhw->bihw", NTSC_YIQ, out)
    np.testing.assert_allclose(after[:, 0], before[:, 0], atol=1e-5)  # luma kept
    chroma_before, chroma_after = before[:, 1] + 1j * before[:, 2], after[:, 1] + 1j * after[:, 2]
    expected = chroma_before * saturation[:, 0].numpy() * np.exp(2j * np.pi * hue[:, 0].numpy())
    np.testing.assert_allclose(chroma_after, expected, atol=1e-5)
    np.testing.assert_allclose(out[0], x[0].numpy(), atol=1e-5)  # no turn, no scale: unchanged


def test_contrast_scales_each_channels_deviations_from_its_mean():
    x = torch.rand(4, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    factor = torch.tensor([0.2, 1.0, 1.5, 1.8])[:, None, None, None]
    out = scale_contrast(x, factor)
    mean = x.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(out.mean(dim=(2, 3), keepdim=True), mean)
    torch.testing.assert_close(out - mean, (x - mean) * factor)


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_jitter_is_brightness_then_hue_and_saturation_then_contrast(channels):
    x = torch.rand(8, channels, 6, 6, generator=torch.Generator().manual_seed(0))
    jitter = draw_jitter(8, torch.Generator().manual_seed(1), "cpu")
    expected = x + jitter["brightness"]
    if channels == 3:
        expected = turn_hue(expected, jitter["hue"], jitter["saturation"])
    expected = scale_contrast(expected, jitter["contrast"])
    torch.testing.assert_close(color_jitter(x, torch.Generator().manual_seed(1)), expected)
