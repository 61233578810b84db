"""The catalog of measures and its documentation say the same."""

import re

from rethink.measures import MEASURES
from tests.conftest import REPO


def test_docs_give_every_measure_of_the_catalog_its_family():
    rows = re.findall(
        r"^\| (`.+?`(?:, `.+?`)*) \| (\w+) \|", (REPO / "docs/measures.md").read_text(), re.M
    )
    documented = {name.strip("`"): family for names, family in rows for name in names.split(", ")}
    assert documented == {name: measure.family for name, measure in MEASURES.items()}
