"""A run's settings are stated once: RunConfig's fields and defaults are the schema's `training`
keys and defaults, a model's overrides follow the same rules, and the precisions the schema
allows are the ones training knows."""

import dataclasses

import pytest
import yaml

from rethink.config import SCHEMA
from rethink.training.precision import PRECISIONS
from rethink.training.settings import ADDED_FOR_IMAGENET, RunConfig

# Fields a run gets from elsewhere than `training`: its job's wildcards and threads, and the
# study's logging block.
NOT_TRAINING_KEYS = {"model", "regularizer", "seed", "threads", "tensorboard"}


def training_schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())["properties"]["training"]["properties"]


def test_the_schema_has_every_run_setting_with_its_default():
    schema = training_schema()
    fields = {
        f.name: f.default for f in dataclasses.fields(RunConfig) if f.name not in NOT_TRAINING_KEYS
    }
    assert set(schema) - {"models", "regularizers"} == set(fields)
    assert {name: schema[name]["default"] for name in fields} == fields


def test_a_models_overrides_follow_the_rules_of_the_training_keys():
    schema = training_schema()
    overrides = schema["models"]["additionalProperties"]["properties"]
    assert schema["regularizers"]["additionalProperties"]["properties"] == overrides
    assert set(overrides) < set(schema)
    for name, rule in overrides.items():
        general = {k: v for k, v in schema[name].items() if k not in ("default", "description")}
        assert rule == general, name


def test_the_schema_allows_the_precisions_training_knows():
    schema = training_schema()
    assert schema["precision"]["enum"] == list(PRECISIONS)
    assert schema["models"]["additionalProperties"]["properties"]["precision"]["enum"] == list(
        PRECISIONS
    )


def test_tfs_rate_scales_to_the_batch_and_decays_every_two_epochs_of_it():
    """TF's Inception recipe: 0.045 for batches of 32, x0.94 every 2 epochs, staircase, with
    decay_steps = int(images / batch x 2); on ImageNet at a global batch of 256, 0.36 decayed
    after every 10,009 steps."""
    tf = RunConfig("inception-v3", lr=0.045, lr_batch=32, batch_size=256, lr_decay=0.94,
                   lr_decay_epochs=2.0)  # fmt: skip
    assert tf.decay_steps(1_281_167) == 10_009
    per_replica = dataclasses.replace(tf, batch_size=32)  # 80,072.9 steps: TF truncates
    assert per_replica.decay_steps(1_281_167) == 80_072
    assert tf.lr_at(0, 1_281_167) == pytest.approx(0.36)
    assert tf.lr_at(10_008, 1_281_167) == pytest.approx(0.36)
    assert tf.lr_at(10_009, 1_281_167) == pytest.approx(0.36 * 0.94)
    assert tf.lr_at(5 * 10_009, 1_281_167) == pytest.approx(0.36 * 0.94**5)
    paper = RunConfig("alexnet")  # the paper's: every 391 steps, whatever the dataset's size
    assert paper.decay_steps(1_281_167) == paper.decay_steps(50_000) == 391


def test_settings_added_for_imagenet_change_no_earlier_runs_hash():
    """Left out of the hashed fields at their defaults; set, they count."""
    plain = RunConfig("mlp1x512")
    assert not set(ADDED_FOR_IMAGENET) & set(plain.determining_fields())
    assert plain.config_hash() == "6e647381262fac33"  # the hash before they existed
    for name, value in {"optimizer": "rmsprop", "average_decay": 0.9999,
                        "batch_norm_scale": False, "lr_decay_epochs": 2.0}.items():  # fmt: skip
        changed = dataclasses.replace(plain, **{name: value})
        assert changed.determining_fields()[name] == value
        assert changed.config_hash() != plain.config_hash()
