# The workflow's own Python: config validation, the experiment grid, input functions.
from snakemake.utils import validate

from rethink.config import check_config, variant_seed
from rethink.datasets import ARCHIVE_DIR, ARCHIVES, DATASETS


validate(config, schema="../schemas/config.schema.yaml")
check_config(config)


wildcard_constraints:
    dataset="|".join(DATASETS),
    variant="|".join(config["variants"]["names"]),
    archive="|".join(ARCHIVES),


def get_archives(wildcards):
    """The downloaded files dataset `wildcards.dataset` is built from (none for mnist5k)."""
    return [
        f"{ARCHIVE_DIR}/{archive.filename}"
        for archive in DATASETS[wildcards.dataset].archives
    ]


def get_final_outputs():
    return expand(
        "results/variants/{dataset}/{variant}.h5",
        dataset=config["datasets"],
        variant=config["variants"]["names"],
    )
