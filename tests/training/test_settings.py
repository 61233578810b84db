"""A run's settings are stated once: RunConfig's fields and defaults are the schema's `training`
keys and defaults, a model's overrides follow the same rules, and the precisions the schema
allows are the ones training knows."""

import dataclasses

import yaml

from rethink.config import SCHEMA
from rethink.training.precision import PRECISIONS
from rethink.training.settings import RunConfig

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
