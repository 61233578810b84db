# The workflow's own Python: config validation, the experiment grid, input functions.
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from rethink.config import ConfigError, check_config, describe_schema_error, variant_seed
from rethink.datasets import ARCHIVE_DIR, ARCHIVES, DATASETS

try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as err:  # raised while handling jsonschema's ValidationError
    raise ConfigError(describe_schema_error(err.__context__)) from None
check_config(config)


wildcard_constraints:
    dataset="|".join(DATASETS),
    variant="|".join(config["variants"]["names"]),
    archive="|".join(ARCHIVES),


def get_archives(wildcards):
    """The downloaded files dataset `wildcards.dataset` is built from (none for mnist5k)."""
    return [f"{ARCHIVE_DIR}/{archive.filename}" for archive in DATASETS[wildcards.dataset].archives]


def get_final_outputs():
    return expand(
        "results/variants/{dataset}/{variant}.h5",
        dataset=config["datasets"],
        variant=config["variants"]["names"],
    )
