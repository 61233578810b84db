"""A run's weights.safetensors: its initial and final weights, loaded with one call into the
registered model, checked against the run's own numbers and an independent evaluation."""

import json
import struct

import pytest
import torch

from rethink.data.h5io import read_dataset
from rethink.models.weights import load_run_model
from rethink.runs import WEIGHTS_FILE
from rethink.training.loop import make_model, train_run
from rethink.training.preprocess import preprocess
from rethink.training.settings import RunConfig

# fp32: the independent evaluation below is in fp32 too, so accuracies agree exactly
SETTINGS = dict(train_subset=500, test_subset=300, max_epochs=3, device="cpu", precision="fp32")


def accuracy_on_test_images(model, variant_path, config) -> float:
    """The test accuracy of `model` on the run's test images, computed here from the stored
    pixels: / 255, center crop and per-image whitening (rethink.training.preprocess)."""
    test = read_dataset(variant_path).test
    images = torch.from_numpy(test.images[: config.test_subset]).permute(0, 3, 1, 2)
    labels = torch.from_numpy(test.labels[: config.test_subset]).long()
    with torch.no_grad():
        predicted = model(preprocess(images, config.crop_size)).argmax(dim=1)
    return (predicted == labels).double().mean().item()


@pytest.mark.parametrize(
    ("model", "regularizer"), [("mlp1x512", "dropout0.25"), ("inception-quarter", "none")]
)
def test_the_final_weights_reproduce_the_runs_test_accuracy(variants, tmp_path, model, regularizer):
    """inception-quarter: batch norm's running statistics come back with the weights."""
    config = RunConfig(model, regularizer=regularizer, **SETTINGS)
    summary = train_run(variants["true"], tmp_path, config)
    final = load_run_model(tmp_path)
    assert not final.training and type(final).__name__ in ("MLP", "SmallInception")
    assert accuracy_on_test_images(final, variants["true"], config) == pytest.approx(
        summary["test_acc"]
    )
    initial = load_run_model(tmp_path, "initial")
    fresh = make_model(config, (1, 28, 28), 10, torch.device("cpu"))  # drawn from the seed
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(initial.state_dict()[name], tensor), name
    trained = final.state_dict()
    assert all(not torch.equal(trained[k], t) for k, t in initial.state_dict().items()
               if k.endswith("weight"))  # fmt: skip


def test_the_file_is_safetensors_with_no_pickle_and_says_what_rebuilds_the_model(
    variants, tmp_path
):
    train_run(variants["true"], tmp_path, RunConfig("mlp1x512", **SETTINGS))
    raw = (tmp_path / WEIGHTS_FILE).read_bytes()
    (header_size,) = struct.unpack("<Q", raw[:8])  # the format: a JSON header, then raw bytes
    header = json.loads(raw[8 : 8 + header_size])
    spec = json.loads(header["__metadata__"]["rethink"])
    assert spec == {"model": "mlp1x512", "input_shape": [1, 28, 28], "n_classes": 10, "dropout": 0}
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    assert {k.split("/")[0] for k in tensors} == {"initial", "final"}
    assert tensors["final/1.weight"]["shape"] == [512, 784]
    assert b"\x80\x04" not in raw[: 8 + header_size]  # no pickle protocol marker
    with pytest.raises(ValueError, match="which: 'best'; give one of initial, final"):
        load_run_model(tmp_path, "best")


def test_a_run_in_tfs_recipe_keeps_its_auxiliary_head_and_averaged_weights(variants, tmp_path):
    """An MLP cannot have the auxiliary head: the file's spec names the head only where it
    trained one; the moving average is kept under `averaged/` and loads as the model."""
    config = RunConfig("mlp1x512", average_decay=0.5, **SETTINGS)
    summary = train_run(variants["true"], tmp_path, config)
    averaged = load_run_model(tmp_path, "averaged")
    accuracy = accuracy_on_test_images(averaged, variants["true"], config)
    assert accuracy == pytest.approx(summary["averaged_test_acc"], abs=1e-9)
    final = load_run_model(tmp_path)
    assert not all(
        torch.equal(a, b)
        for a, b in zip(averaged.state_dict().values(), final.state_dict().values(), strict=True)
    )
    plain = tmp_path / "plain"
    train_run(variants["true"], plain, RunConfig("mlp1x512", **SETTINGS))
    with pytest.raises(ValueError, match="holds no averaged weights"):
        load_run_model(plain, "averaged")


def test_the_auxiliary_head_is_rebuilt_from_the_spec(tmp_path):
    """Inception V3 trained with its auxiliary head (TF's recipe) loads back, head included."""
    from rethink.models.weights import save_weights, weights_spec

    config = RunConfig("inception-v3", aux_loss_weight=0.4, device="cpu")
    model = make_model(config, (3, 299, 299), 10, torch.device("cpu"))
    spec = weights_spec(config, (3, 299, 299), 10)
    assert spec["aux_logits"] is True
    assert "aux_logits" not in weights_spec(RunConfig("inception-v3"), (3, 299, 299), 10)
    save_weights(tmp_path / WEIGHTS_FILE, model, model, spec)
    loaded = load_run_model(tmp_path)
    assert any(name.startswith("AuxLogits.") for name in loaded.state_dict())
