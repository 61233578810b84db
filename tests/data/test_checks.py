"""A user's corruption or dataset is checked against its contract before the jobs that depend
on it, each failure one line naming the entry and the fix."""

import numpy as np
import pytest

from rethink.data.checks import ExtensionError, check_corruption, check_dataset_size
from rethink.data.datasets import DATASETS
from rethink.data.variants import PIXEL_CORRUPTIONS
from tests.conftest import copy_workflow, run_snakemake

SHAPES = sorted({source.image_shape for source in DATASETS.values() if not source.encoded})


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(PIXEL_CORRUPTIONS))
def test_every_registered_corruption_keeps_its_contract(name, shape):
    check_corruption(name, PIXEL_CORRUPTIONS[name], shape)


def unit_scale(train, test, rng):
    return train / 255.0, test / 255.0  # float64 in [0, 1]


def unit_scale_float32(train, test, rng):
    return (train / 255).astype(np.float32), (test / 255).astype(np.float32)


def channels_first(train, test, rng):
    return train.transpose(0, 3, 1, 2), test.transpose(0, 3, 1, 2)


def one_split(train, test, rng):
    return train


def broken(train, test, rng):
    raise KeyError("width")


def lists(train, test, rng):
    return train.tolist(), test.tolist()


def undefined(train, test, rng):
    return np.full(train.shape, np.nan, np.float32), test.astype(np.float32)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (unit_scale, "returned float64 train images; return uint8 or float32"),
        (unit_scale_float32, "returned train pixels within \\[-1, 1\\]; keep the input's 0-255"),
        (channels_first, r"of shape \(6, 1, 28, 28\) for \(6, 28, 28, 1\); keep N x H x W x C"),
        (one_split, "ValueError: too many values to unpack"),
        (broken, "KeyError: 'width'"),
        (lists, "returned list train images; return numpy arrays"),
        (undefined, "returned NaN or infinite train pixels"),
    ],
)
def test_a_corruption_that_breaks_its_contract_is_named_with_the_fix(corrupt, message):
    with pytest.raises(ExtensionError, match=f"^pixel corruption 'mine' on 6 train .*{message}"):
        check_corruption("mine", corrupt, (28, 28, 1))


def test_a_loader_that_returns_other_images_than_its_entry_declares_is_named():
    check_dataset_size("mine", (8, 8, 1), (900, 97), (800, 8, 8, 1), (197, 8, 8, 1))  # moved
    with pytest.raises(ExtensionError, match=r"^dataset 'mine': .* 797 test images of \(8, 8\)"):
        check_dataset_size("mine", (8, 8, 1), (1000, 797), (1000, 8, 8, 1), (797, 8, 8))
    with pytest.raises(ExtensionError, match="declares \\(1000, 797\\) images of \\(8, 8, 1\\)"):
        check_dataset_size("mine", (8, 8, 1), (1000, 797), (1000, 8, 8, 1), (790, 8, 8, 1))


def test_a_study_with_a_broken_corruption_stops_before_any_job_with_one_line(tmp_path):
    study = {"datasets": ["mnist5k"], "variants": {"names": ["true", "unit"]}, "runs": []}
    root = copy_workflow(tmp_path, study)
    with (root / "rethink/data/variants.py").open("a") as variants:
        variants.write(
            "\n\ndef unit(train, test, rng):\n    return train / 255.0, test / 255.0\n\n\n"
            'PIXEL_CORRUPTIONS["unit"] = unit\n'
        )
    result = run_snakemake(root, "-n", repo=root)
    assert result.returncode != 0 and "Job stats" not in result.stdout
    line = "pixel corruption 'unit' on 6 train and 3 test uint8 images of (28, 28, 1): returned "
    output = result.stdout + result.stderr
    assert line + "float64 train images" in output and "Traceback" not in output, output


def test_the_docs_example_corruption_keeps_its_contract_and_survives_whitening():
    import re

    import torch

    from rethink.training.preprocess import per_image_standardization
    from tests.conftest import REPO

    text = (REPO / "docs/extending.md").read_text()
    (block,) = re.findall(r"```python\n# rethink/data/variants.py\n(.*?)```", text, re.S)
    namespace = {"PIXEL_CORRUPTIONS": dict(PIXEL_CORRUPTIONS), "np": np}
    exec(block, namespace)
    (name,) = re.findall(r'^PIXEL_CORRUPTIONS\["([\w-]+)"\]', block, re.M)
    corrupt = namespace["PIXEL_CORRUPTIONS"][name]
    for shape in SHAPES:
        check_corruption(name, corrupt, shape)
    images = np.random.default_rng(1).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    corrupted, _ = corrupt(images, images[:1], np.random.default_rng(0))

    def whitened(x):
        return per_image_standardization(
            torch.as_tensor(x, dtype=torch.float32).permute(0, 3, 1, 2)
        )

    before, after = whitened(images), whitened(corrupted)
    # what the network sees differs from the clean image and from its negative (255 - x)
    assert not torch.allclose(after, before, atol=0.1) and not torch.allclose(
        after, -before, atol=0.1
    )
