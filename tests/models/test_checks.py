"""A user's model is checked against its contract once, before a study's first job: one line
naming the entry and the fix for each way it can break it."""

import pytest
import yaml
from torch import nn

from rethink.data.checks import ExtensionError
from rethink.models import MODELS, ModelSpec
from rethink.models.checks import PROBE_CLASSES, check_model
from tests.conftest import copy_workflow, run_snakemake


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_keeps_its_contract(name):
    check_model(name, 3, max(28, MODELS[name].min_size))


class Swapped(nn.Module):
    def __init__(self, n_classes, input_shape, dropout=0.0):
        super().__init__()
        c, h, w = input_shape
        self.linear = nn.Linear(c * h * w, n_classes)


class NoDropout(nn.Module):
    def __init__(self, input_shape, n_classes):
        super().__init__()


class SixtyFour(nn.Module):
    def __init__(self, input_shape, n_classes, dropout=0.0):
        super().__init__()
        c, h, w = input_shape
        self.linear = nn.Linear(c * h * w, 64)

    def forward(self, x):
        return self.linear(x.flatten(1))


class NeedsEight(nn.Module):
    """Two 2x2 poolings and a 2x2 convolution: 8x8 inputs at least, whatever min_size says."""

    def __init__(self, input_shape, n_classes, dropout=0.0):
        super().__init__()
        c = input_shape[0]
        self.body = nn.Sequential(nn.MaxPool2d(2), nn.MaxPool2d(2), nn.Conv2d(c, n_classes, 2))

    def forward(self, x):
        return self.body(x).amax((2, 3))


@pytest.mark.parametrize(
    "builder, min_size, message",
    [
        (
            "Swapped",
            1,
            r"fails on 2 inputs of \(C, H, W\) = \(3, 28, 28\): TypeError: cannot unpack",
        ),
        ("NoDropout", 1, r"its builder must take \(input_shape, n_classes, dropout=...\)"),
        ("SixtyFour", 1, rf"returns outputs of shape \(2, 64\) .* n_classes={PROBE_CLASSES}"),
        ("NeedsEight", 4, r"fails on 2 inputs of .* \(3, 4, 4\) \(its entry's min_size\)"),
        ("Missing", 1, "cannot import its builder"),
    ],
)
def test_a_model_that_breaks_its_contract_is_named_with_the_fix(
    monkeypatch, builder, min_size, message
):
    spec = ModelSpec(f"{__name__}:{builder}", 0.1, min_size=min_size)
    monkeypatch.setitem(MODELS, "mine", spec)
    with pytest.raises(ExtensionError, match=rf"^model 'mine' \({spec.builder}\): {message}"):
        check_model("mine", 3, 28)


WIDE = """from torch import nn


class Wide(nn.Module):
    def __init__(self, input_shape, n_classes, dropout=0.0):
        super().__init__()
        self.linear = nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], 64)

    def forward(self, x):
        return self.linear(x.flatten(1))
"""


def test_a_study_of_a_broken_model_stops_before_its_first_job(tmp_path):
    study = {
        "datasets": ["mnist5k"],
        "variants": {"names": ["true"]},
        "runs": [{"models": ["wide"]}],
    }
    root = copy_workflow(tmp_path, study)
    (root / "rethink/models/wide.py").write_text(WIDE)
    with (root / "rethink/models/__init__.py").open("a") as registry:
        registry.write('\nMODELS["wide"] = ModelSpec("rethink.models.wide:Wide", 0.01)\n')
    result = run_snakemake(root, "--cores", "1", repo=root)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "model 'wide' (rethink.models.wide:Wide): returns outputs of shape (2, 64)" in output
    assert not (root / "results").exists(), "a job ran"
    assert yaml.safe_load((root / "config.yaml").read_text()) == study


def test_an_auxiliary_head_is_checked_at_the_studys_size():
    """Inception V3's auxiliary head needs 299x299 inputs (a 17x17 Mixed_6e map for its 5x5
    pooling and convolution): at 299 it gives (logits, auxiliary logits); smaller, it is named."""
    check_model("inception-v3", 3, 299, aux=True)
    with pytest.raises(ExtensionError, match=r"with its auxiliary head .* \(3, 139, 139\)"):
        check_model("inception-v3", 3, 139, aux=True)
    check_model("inception-v3", 3, 139)  # without it, 139 is fine
