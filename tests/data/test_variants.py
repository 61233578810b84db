import os

import numpy as np
import pytest
from scipy import stats

from rethink.data.h5io import ImageDataset, Split, read_dataset, write_dataset
from rethink.data.variants import (
    PIXEL_CORRUPTIONS,
    VariantNameError,
    _permute_each_image,
    label_corruption,
    make_variant,
    parse_variant,
    write_variant_file,
)


def position_coded(n: int, h: int = 8, w: int = 8) -> ImageDataset:
    """Images whose pixel at (r, c) holds (r, c, image index): a permutation is readable."""
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    images = np.empty((n, h, w, 3), dtype=np.uint8)
    images[..., 0], images[..., 1] = rows, cols
    images[..., 2] = (np.arange(n) % 256)[:, None, None]
    labels = np.arange(n) % 10
    half = n // 2
    return ImageDataset(
        Split(images[:half], labels[:half]),
        Split(images[half:], labels[half:]),
        [str(i) for i in range(10)],
    )


def positions(images: np.ndarray) -> np.ndarray:
    """Per image, the original flat position now stored at each pixel."""
    w = images.shape[2]
    return (images[..., 0].astype(int) * w + images[..., 1]).reshape(len(images), -1)


def sort_pixels(pixels: np.ndarray) -> np.ndarray:
    """An image's pixels (channel vectors, one per row) in lexicographic order: its multiset."""
    return pixels[np.lexsort(pixels.T[::-1])]


@pytest.mark.parametrize("p", [0.2, 0.4, 0.6, 0.8, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_changed_fraction_is_binomial_around_0_9p(mnist5k, p, seed):
    variant = make_variant(mnist5k, f"corrupt{p}", seed)
    n = len(mnist5k.train.labels)
    changed = int(np.sum(variant.train.labels != mnist5k.train.labels))
    low, high = stats.binom.interval(0.999, n, 0.9 * p)
    assert low <= changed <= high
    assert variant.attrs["changed_fraction"] == pytest.approx(changed / n)
    assert variant.attrs["p"] == p


@pytest.mark.parametrize("p", [0.2, 0.4, 0.6, 0.8])
def test_corrupted_examples_are_picked_independently_of_their_position(mnist5k, p):
    """The CNN runs train on a variant's first 256 examples: their corrupted share must be
    that of the whole set, 0.9p, and so must every block of consecutive examples."""
    variant = make_variant(mnist5k, f"corrupt{p}", seed=0)
    changed = variant.train.labels != mnist5k.train.labels
    low, high = stats.binom.interval(0.999, 256, 0.9 * p)
    assert low <= changed[:256].sum() <= high
    per_block = changed.reshape(10, 400).sum(axis=1)  # 10 blocks of 400 consecutive examples
    assert stats.chi2_contingency(np.stack([per_block, 400 - per_block])).pvalue > 1e-3


def test_random_labels_are_uniform_and_independent_of_images(mnist5k):
    variant = make_variant(mnist5k, "random", seed=0)
    new = variant.train.labels
    assert stats.chisquare(np.bincount(new, minlength=10)).pvalue > 1e-3
    # The true label stands for the image's content: the contingency table must look independent.
    table = np.zeros((10, 10))
    np.add.at(table, (mnist5k.train.labels, new), 1)
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # And a pixel statistic of the image predicts nothing about the random label.
    ink = mnist5k.train.images.reshape(len(new), -1).mean(axis=1)
    assert abs(stats.spearmanr(ink, new).statistic) < 0.06


def test_test_labels_stay_clean_unless_asked(mnist5k):
    clean = make_variant(mnist5k, "random", seed=0)
    np.testing.assert_array_equal(clean.test.labels, mnist5k.test.labels)
    assert clean.attrs["test_changed_fraction"] == 0
    dirty = make_variant(mnist5k, "random", seed=0, corrupt_test_labels=True)
    assert dirty.attrs["test_changed_fraction"] == pytest.approx(0.9, abs=0.05)
    np.testing.assert_array_equal(dirty.train.labels, clean.train.labels)


def test_a_variant_records_its_provenance(mnist5k):
    variant = make_variant(mnist5k, "corrupt0.4", seed=3, corrupt_test_labels=True)
    attrs = variant.attrs
    assert (attrs["variant"], attrs["p"], attrs["seed"]) == ("corrupt0.4", 0.4, 3)
    assert attrs["dataset_seed"] == mnist5k.attrs["seed"] == 0
    assert attrs["corrupt_test_labels"] is True and attrs["sha256"] == mnist5k.attrs["sha256"]
    assert attrs["test_changed_fraction"] == np.mean(variant.test.labels != mnist5k.test.labels) > 0


def test_true_keeps_images_and_labels_byte_identical(mnist5k, tmp_path):
    source = tmp_path / "datasets" / "mnist5k.h5"
    write_dataset(source, mnist5k)
    write_variant_file(str(source), str(tmp_path / "variants" / "true.h5"), "true", seed=0)
    variant = read_dataset(tmp_path / "variants" / "true.h5")
    for name in ("train", "test"):
        original, kept = mnist5k.split(name), variant.split(name)
        assert kept.images.dtype == original.images.dtype
        assert kept.images.tobytes() == original.images.tobytes()
        assert kept.labels.tobytes() == original.labels.tobytes()


def test_shuffled_pixels_is_one_permutation_for_all_train_and_test_images():
    source = position_coded(400)
    variant = make_variant(source, "shuffled-pixels", seed=0)
    moved = np.concatenate([positions(variant.train.images), positions(variant.test.images)])
    assert (moved == moved[0]).all()  # the same permutation everywhere
    assert sorted(moved[0]) == list(range(64)) and (moved[0] != np.arange(64)).mean() > 0.9
    # Channel vectors move whole: the image-index channel is untouched.
    np.testing.assert_array_equal(variant.train.images[..., 2], source.train.images[..., 2])
    np.testing.assert_array_equal(variant.train.labels, source.train.labels)


@pytest.mark.parametrize("name", ["shuffled-pixels", "random-pixels"])
def test_pixel_permutations_keep_each_images_pixel_multiset(mnist5k, color_dataset, name):
    for source in (mnist5k, color_dataset):
        variant = make_variant(source, name, seed=3)
        for split in ("train", "test"):
            before, after = source.split(split).images, variant.split(split).images
            assert after.dtype == before.dtype and after.shape == before.shape
            for i in range(0, len(before), 97):
                flat_before = before[i].reshape(-1, before.shape[-1])
                flat_after = after[i].reshape(-1, after.shape[-1])
                np.testing.assert_array_equal(sort_pixels(flat_before), sort_pixels(flat_after))
            assert not np.array_equal(before, after)


def test_random_pixels_permutes_every_chunk_of_a_large_set():
    """Images are permuted a chunk at a time (CIFAR-10 has 50,000): every chunk, the last
    partial one included, gets independent permutations."""
    source = position_coded(600)
    shuffled = _permute_each_image(source.train.images, np.random.default_rng(0), chunk=64)
    moved = positions(shuffled)
    assert all(sorted(row) == list(range(64)) for row in moved)
    assert (moved != np.arange(64)).mean() > 0.9  # the last chunk too: nothing stays in place
    assert len({row.tobytes() for row in moved}) == len(moved)
    np.testing.assert_array_equal(shuffled[..., 2], source.train.images[..., 2])


def test_random_pixels_uses_a_different_permutation_per_image():
    source = position_coded(600)
    variant = make_variant(source, "random-pixels", seed=0)
    moved = np.concatenate([positions(variant.train.images), positions(variant.test.images)])
    assert all(sorted(row) == list(range(64)) for row in moved)  # each one a permutation
    assert len({row.tobytes() for row in moved}) == len(moved)  # all different
    np.testing.assert_array_equal(variant.test.images[..., 2], source.test.images[..., 2])
    # Uniform over positions: where position 0 lands is spread over the whole image.
    landing = np.argmax(moved == 0, axis=1)
    assert stats.chisquare(np.bincount(landing, minlength=64)).pvalue > 1e-3


def test_gaussian_matches_per_channel_mean_and_variance(mnist5k, color_dataset):
    for source in (mnist5k, color_dataset):
        variant = make_variant(source, "gaussian", seed=0)
        channels = source.train.images.shape[-1]
        truth = source.train.images.reshape(-1, channels).astype(np.float64)
        for split in ("train", "test"):
            noise = variant.split(split).images
            assert noise.shape == source.split(split).images.shape
            noise = noise.reshape(-1, channels).astype(np.float64)
            np.testing.assert_allclose(noise.mean(0), truth.mean(0), rtol=0.01)
            np.testing.assert_allclose(noise.var(0), truth.var(0), rtol=0.01)
        # Noise carries nothing of the image: no correlation with the original pixels.
        noise = variant.train.images.reshape(-1, channels)
        for c in range(channels):
            assert abs(np.corrcoef(noise[:, c], truth[:, c])[0, 1]) < 0.01


@pytest.mark.parametrize("corrupt_test_labels", [False, True])
def test_the_variant_file_corrupts_test_labels_only_when_asked(
    mnist5k, tmp_path, corrupt_test_labels
):
    source = tmp_path / "mnist5k.h5"
    write_dataset(source, mnist5k)
    out = tmp_path / "random.h5"
    if corrupt_test_labels:
        write_variant_file(str(source), str(out), "random", seed=0, corrupt_test_labels=True)
    else:
        write_variant_file(str(source), str(out), "random", seed=0)  # the default
    stored = read_dataset(out)
    changed = np.mean(stored.test.labels != mnist5k.test.labels)
    assert changed == pytest.approx(0.9, abs=0.05) if corrupt_test_labels else changed == 0
    assert stored.attrs["corrupt_test_labels"] == corrupt_test_labels


def test_label_only_variant_links_to_source_images(mnist5k, tmp_path):
    source = tmp_path / "datasets" / "mnist5k.h5"
    write_dataset(source, mnist5k)
    out = tmp_path / "variants" / "mnist5k" / "random.h5"
    write_variant_file(str(source), str(out), "random", seed=0)
    assert os.path.getsize(out) < os.path.getsize(source) / 20
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(elsewhere)  # the link is relative to the variant file, not the working dir
        variant = read_dataset(out)
    finally:
        os.chdir(cwd)
    np.testing.assert_array_equal(variant.train.images, mnist5k.train.images)


ALL = ["true", "random", "corrupt0.3", "shuffled-pixels", "random-pixels", "gaussian"]


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_bytes_other_seed_other_noise(mnist5k, tmp_path, name):
    source = tmp_path / "mnist5k.h5"
    write_dataset(source, mnist5k)
    paths = [tmp_path / f"{name}-{i}.h5" for i in range(3)]
    for path, seed in zip(paths, [7, 7, 8], strict=True):
        write_variant_file(str(source), str(path), name, seed=seed)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    a, c = read_dataset(paths[0]), read_dataset(paths[2])
    same = np.array_equal(a.train.images, c.train.images) and np.array_equal(
        a.train.labels, c.train.labels
    )
    assert same == (name == "true")
    assert a.attrs["variant"] == name and a.attrs["seed"] == 7 and c.attrs["seed"] == 8


def test_variants_sharing_a_seed_draw_independent_noise(mnist5k):
    a = make_variant(mnist5k, "corrupt0.5", seed=0).train.labels
    b = make_variant(mnist5k, "corrupt0.50", seed=0).train.labels
    assert not np.array_equal(a, b)


@pytest.mark.parametrize(
    ("name", "p", "pixels"),
    [
        ("true", 0.0, None),
        ("random", 1.0, None),
        ("corrupt0.2", 0.2, None),
        ("corrupt1", 1.0, None),
        ("corrupt0", 0.0, None),
        ("gaussian", 0.0, "gaussian"),
    ],
)
def test_parse_variant(name, p, pixels):
    spec = parse_variant(name)
    assert (spec.p, spec.pixels) == (p, pixels)


# Every registered corruption is named (the paper's three, and any a user adds after them).
KNOWN = (
    "known variants: true, random, corrupt{p} (e.g. corrupt0.2), shuffled-pixels, "
    f"random-pixels, gaussian{''.join(f', {n}' for n in list(PIXEL_CORRUPTIONS)[3:])}, "
    "rademacher{k}"
)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("corrupt1.5", "outside [0, 1]; write corrupt{p} with 0 <= p <= 1, e.g. corrupt0.2"),
        ("shufled-pixels", "unknown variant 'shufled-pixels'; " + KNOWN),
        ("corrupt-0.2", "unknown variant 'corrupt-0.2'; " + KNOWN),
    ],
)
def test_bad_variant_names_explain_what_is_allowed(name, message):
    with pytest.raises(VariantNameError) as info:
        parse_variant(name)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("name", "p"),
    [
        ("true", 0.0),
        ("corrupt0.2", 0.2),
        ("random", 1.0),
        ("gaussian", None),
        ("rademacher2", None),
    ],
)
def test_label_corruption_is_p_for_label_variants_and_nan_otherwise(name, p):
    """The p of Fig. 1b-c's x axis: pixel corruptions and random signs have none."""
    assert label_corruption(name) == p if p is not None else np.isnan(label_corruption(name))
