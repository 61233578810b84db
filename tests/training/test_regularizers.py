"""Regularizer names: kinds combined with +, wd and dropout with an optional strength."""

import pytest

from rethink.training.regularizers import (
    Regularization,
    RegularizerNameError,
    parse_regularizer,
    strength,
)
from rethink.training.settings import RunConfig


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("none", {}),
        ("crop+wd", {"crop": None, "wd": None}),
        ("dropout0.25", {"dropout": 0.25}),
        ("crop+dropout0.5", {"crop": None, "dropout": 0.5}),
        ("wd1e-4+dropout0", {"wd": 1e-4, "dropout": 0.0}),
    ],
)
def test_names_parse_to_kinds_and_strengths(name, parts):
    assert parse_regularizer(name) == parts


def test_a_plain_name_keeps_the_configured_strength_and_an_absent_one_is_zero():
    assert strength("crop+wd", "wd", 5e-4) == 5e-4
    assert strength("crop+wd1e-4", "wd", 5e-4) == 1e-4
    assert strength("crop", "wd", 5e-4) == 0.0
    assert strength("dropout0.25", "dropout", 0.5) == 0.25


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("dropout1", "dropout strength '1' is not a number in [0, 1); write e.g. dropout0.25"),
        ("wd1e-3x", "wd strength '1e-3x' is not a number in [0, inf); write e.g. wd1e-4"),
        ("wd1e999", "wd strength '1e999' is not a number in [0, inf)"),
        ("crop2", "regularizer 'crop2' in 'crop2': crop takes no strength; write crop"),
        ("wd+wd1e-3", "names wd twice"),
        ("none+crop", "combines 'none' with others"),
        ("wdd", "unknown regularizer 'wdd' in 'wdd'; known: none, wd, crop, augment, dropout"),
    ],
)
def test_bad_names_and_strengths_say_what_to_write(name, message):
    with pytest.raises(RegularizerNameError) as err:
        parse_regularizer(name)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("none", Regularization()),
        ("crop+wd1e-4", Regularization(crop=True, weight_decay=1e-4)),
        ("augment+dropout", Regularization(augment=True, dropout=0.5)),
        ("wd+dropout0.1", Regularization(weight_decay=5e-4, dropout=0.1)),
    ],
)
def test_a_run_reads_its_regularizer_as_one_typed_value(name, expected):
    config = RunConfig("mlp1x512", regularizer=name, weight_decay=5e-4, dropout=0.5)
    assert config.regularization == expected
    assert expected.randomizes_inputs == ("crop" in name or "augment" in name)
