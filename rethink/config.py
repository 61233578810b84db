"""Checks of a study config beyond its JSON schema: names against the package's registries.

The schema (schemas/config.schema.yaml) fixes structure, types and ranges; this module checks
what the schema cannot know, so that a typo stops Snakemake before any job runs.
"""

import difflib

import jsonschema

from rethink import RethinkError
from rethink.datasets import DATASETS
from rethink.variants import VariantNameError, parse_variant


class ConfigError(RethinkError):
    """A config value that names nothing the pipeline knows."""


def describe_schema_error(err: jsonschema.ValidationError) -> str:
    """One line naming the offending config key, from jsonschema's verbose error."""
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
    where = where.lstrip(".")
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = list(err.schema.get("properties", {}))
        unknown = [k for k in err.instance if k not in allowed]
        key = ".".join(filter(None, [where, str(unknown[0])]))
        close = difflib.get_close_matches(str(unknown[0]), allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"config key '{key}' is unknown; {hint}allowed here: {', '.join(allowed)}"
    return f"config key '{where or '(top level)'}': {err.message}"


def check_config(config: dict) -> dict:
    """Raise ConfigError naming the offending key; return `config` with names normalized."""
    for name in config["datasets"]:
        if name not in DATASETS:
            raise ConfigError(
                f"config key 'datasets': unknown dataset '{name}'; known: {', '.join(DATASETS)}"
            )
    variants = config["variants"]
    # An unquoted `true` in YAML is a boolean: accept it as the variant `true`.
    variants["names"] = ["true" if v is True else str(v) for v in variants["names"]]
    for name in variants["names"]:
        try:
            parse_variant(name)
        except VariantNameError as err:
            raise ConfigError(f"config key 'variants.names': {err}") from None
    for name in variants["seeds"]:
        if name not in variants["names"]:
            raise ConfigError(
                f"config key 'variants.seeds': '{name}' is not one of variants.names "
                f"({', '.join(variants['names'])})"
            )
    return config


def variant_seed(config: dict, variant: str) -> int:
    """The noise seed of one variant: its own override, else the study's."""
    return config["variants"]["seeds"].get(variant, config["variants"]["seed"])
