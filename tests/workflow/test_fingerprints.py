"""Code fingerprints from the source alone: each registry entry of the package is found where it
is written, and jobs that run different code get different fingerprints. What an edit reruns
through Snakemake: tests/test_reruns.py."""

import importlib

import pytest

from rethink.workflow.fingerprints import REGISTRIES, _registry, code_fingerprint
from tests.conftest import REPO

TRAIN = REPO / "scripts/train_run.py"


@pytest.mark.parametrize("module", sorted(REGISTRIES))
def test_every_entry_of_each_registry_is_read_from_its_source(module):
    registered = getattr(importlib.import_module(module), REGISTRIES[module])
    assert _registry(module).entries.keys() == registered.keys()


def test_each_model_gives_its_runs_a_fingerprint_of_their_own():
    from rethink.models import MODELS

    prints = {model: code_fingerprint(TRAIN, {"rethink.models": model}) for model in MODELS}
    assert len(set(prints.values())) == len(MODELS)
    assert prints["mlp1x512"] == code_fingerprint(TRAIN, {"rethink.models": "mlp1x512"})


def test_an_entry_missing_from_the_source_counts_its_whole_registry():
    unread = code_fingerprint(TRAIN, {"rethink.models": "built-elsewhere"})
    assert unread != code_fingerprint(TRAIN)
    assert unread == code_fingerprint(TRAIN, {"rethink.models": "registered-at-run-time"})


def test_a_key_of_none_reads_no_entry():
    variant = REPO / "scripts/write_variant.py"
    assert code_fingerprint(variant, {"rethink.data.variants": None}) == code_fingerprint(variant)
    gaussian = code_fingerprint(variant, {"rethink.data.variants": "gaussian"})
    assert gaussian != code_fingerprint(variant)
