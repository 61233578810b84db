"""The figure catalog: which variants Fig. 1a shows."""

from rethink.data.variants import PIXEL_CORRUPTIONS
from rethink.results.catalog import fig1a_variants


def test_fig1a_shows_true_and_random_labels_then_every_pixel_corruption(monkeypatch):
    monkeypatch.setitem(PIXEL_CORRUPTIONS, "speckled", lambda train, test, rng: (train, test))
    study = ["corrupt0.4", "gaussian", "speckled", "rademacher", "random", "true", "random-pixels"]
    assert fig1a_variants(study) == ["true", "random", "random-pixels", "gaussian", "speckled"]
    assert fig1a_variants(["corrupt0.2", "rademacher1"]) == []
