"""Checks of a study config beyond its JSON schema: names against the package's registries.

The schema (schemas/config.schema.yaml) fixes structure, types and ranges; this module checks
what the schema cannot know, so that a typo stops Snakemake before any job runs.
"""

import difflib
import functools
import importlib.util
import itertools
import math
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from rethink import RethinkError
from rethink.data.checks import check_corruption
from rethink.data.datasets import DATASETS
from rethink.data.variants import PIXEL_CORRUPTIONS, VariantNameError, parse_variant
from rethink.models import MODELS
from rethink.runs import RUN_FIELDS
from rethink.training.regularizers import RegularizerNameError, parse_regularizer
from rethink.training.settings import RunConfig

# In the checkout (the project installs editable): the workflow validates against it too.
SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(RethinkError):
    """A config value that names nothing the pipeline knows."""


def load_study(path: str | Path) -> dict:
    """A study config as the workflow sees it, outside Snakemake: the schema's defaults filled
    in, names checked."""
    from snakemake.utils import validate  # heavy import, needed here only

    config = yaml.safe_load(Path(path).read_text())
    validate(config, str(SCHEMA), set_default=True)
    return check_config(config)


def describe_schema_error(err: jsonschema.ValidationError) -> str:
    """One line naming the offending config key, from jsonschema's verbose error."""
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
    where = where.lstrip(".")
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = list(err.schema.get("properties", {}))
        unknown = [k for k in err.instance if k not in allowed]
        key = ".".join(filter(None, [where, str(unknown[0])]))
        hint = _did_you_mean(str(unknown[0]), allowed)
        return f"config key '{key}' is unknown; {hint}allowed here: {', '.join(allowed)}"
    return f"config key '{where or '(top level)'}': {err.message}"


def check_config(config: dict) -> dict:
    """Raise ConfigError naming the offending key; return `config` with names normalized."""
    check_numbers(config, _schema())
    for name in config["datasets"]:
        if name not in DATASETS:
            raise ConfigError(
                f"config key 'datasets': unknown dataset '{name}'; known: {', '.join(DATASETS)}"
            )
    variants = config["variants"]
    variants["names"] = _variant_names(variants["names"])
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
    _check_runs(config)
    _check_encoded(config)
    _check_corruptions(config)
    for model in config["training"]["models"]:
        _check_model(model, "training.models")
    for name in config["training"]["regularizers"]:
        _check_regularizer(name, "training.regularizers")
    _check_critical(config["training"])
    _check_precision(config["training"])
    _check_aux_heads(config)
    _check_logging(config.get("logging", {}))
    for model in config["cluster"]["minutes_per_million_images"]:
        _check_model(model, "cluster.minutes_per_million_images")
    return config


@functools.cache
def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def check_numbers(config: dict, schema: dict) -> None:
    """What JSON schema lets through: every number finite (NaN passes any bound, and YAML
    reads `.nan` and `.inf`), and an integer where the schema means one (JSON schema counts
    1500.0 as an integer; a seed of 1500.0 would name no file)."""
    for key, value, types in _numbers(config, schema):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key '{key}': {value} is not a finite number; give one")
        integer_only = "integer" in types and "number" not in types
        if integer_only and not isinstance(value, int):
            raise ConfigError(
                f"config key '{key}': {value!r} is not an integer; write it without a decimal "
                "point or exponent"
            )


def _numbers(value, schema: dict, key: str = ""):
    """(key, value, the schema's types) of every number in `value`, walking `schema` beside
    it (booleans are not numbers here)."""
    if isinstance(value, dict):
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for name, item in value.items():
            sub = properties.get(name, extra if isinstance(extra, dict) else {})
            yield from _numbers(item, sub, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, schema.get("items", {}), f"{key}[{i}]")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        types = schema.get("type", [])
        yield key, value, [types] if isinstance(types, str) else types


def _check_runs(config: dict) -> None:
    for i, grid in enumerate(config["runs"]):
        key = f"runs[{i}]"
        grid.setdefault("datasets", list(config["datasets"]))
        grid.setdefault("variants", list(config["variants"]["names"]))
        grid["variants"] = _variant_names(grid["variants"])
        for name in grid["datasets"]:
            if name not in config["datasets"]:
                raise ConfigError(f"config key '{key}.datasets': '{name}' is not in 'datasets'")
            crop, (h, w, _) = config["training"]["crop_size"], DATASETS[name].image_shape
            if crop > min(h, w):
                raise ConfigError(
                    f"config key 'training.crop_size': {crop} exceeds the {h}x{w} images of "
                    f"'{name}' used in {key}; use at most {min(h, w)}"
                )
        for name in grid["variants"]:
            if name not in config["variants"]["names"]:
                raise ConfigError(
                    f"config key '{key}.variants': '{name}' is not in 'variants.names'; "
                    "add it there so that it is generated"
                )
        for name in grid["models"]:
            _check_model(name, f"{key}.models")
            setting = {**config["training"], **config["training"]["models"].get(name, {})}
            if setting["crop_size"] < MODELS[name].min_size:
                raise ConfigError(
                    f"config key 'training.crop_size': {name} (in {key}) takes inputs of at "
                    f"least {MODELS[name].min_size}x{MODELS[name].min_size}, not "
                    f"{setting['crop_size']}; set training.models.{name}.crop_size"
                )
        for name in grid["regularizers"]:
            _check_regularizer(name, f"{key}.regularizers")


def _check_regularizer(name: str, key: str) -> None:
    try:
        parse_regularizer(name)
    except RegularizerNameError as err:
        raise ConfigError(f"config key '{key}': {err}") from None


def _check_corruptions(config: dict) -> None:
    """Each pixel corruption of the study, on a few random images of each dataset's shape
    (rethink.data.checks): milliseconds, before any job."""
    pixels = {parse_variant(name).pixels for name in config["variants"]["names"]} - {None}
    for dataset in config["datasets"]:
        for name in sorted(pixels):
            check_corruption(name, PIXEL_CORRUPTIONS[name], DATASETS[dataset].image_shape)


def _check_encoded(config: dict) -> None:
    """Datasets stored as JPEG files (ImageNet) have label variants only, no critical samples
    (the search perturbs stored pixels) and no measures; a global batch splits evenly over a
    run's processes; compilation is for one process (CUDA graphs cannot hold DDP's all-reduce); the
    per-example record needs the whole training set evaluated."""
    encoded = [name for name in config["datasets"] if DATASETS[name].encoded]
    if encoded and config["measures"]["enabled"]:
        raise ConfigError(
            f"config key 'measures.enabled': the measures read every training image into "
            f"memory, and dataset '{encoded[0]}' is stored as JPEG files; set it to false, or "
            "study that dataset in a study of its own"
        )
    for variant in config["variants"]["names"]:
        if encoded and not parse_variant(variant).labels_only:
            raise ConfigError(
                f"config key 'variants.names': '{variant}' changes pixels, and dataset "
                f"'{encoded[0]}' is stored as JPEG files, which have label variants only; "
                "remove it, or study that dataset in a study of its own"
            )
    for key, setting in _training_settings(config["training"]).items():
        processes = setting["nodes"] * setting["gpus_per_node"]
        if setting["batch_size"] % processes:
            raise ConfigError(
                f"config key '{key}.batch_size': the global batch of {setting['batch_size']} "
                f"does not split evenly over nodes x gpus_per_node = {processes} processes"
            )
        group = setting["batch_norm_group"]
        if group and setting["batch_size"] // processes % group:
            raise ConfigError(
                f"config key '{key}.batch_norm_group': each of the {processes} processes' "
                f"{setting['batch_size'] // processes} images of a global batch of "
                f"{setting['batch_size']} must split into sub-batches of {group}; choose a "
                "divisor of it"
            )
        if setting["jpeg_decoder"] == "nvjpeg" and setting["device"] == "cpu":
            raise ConfigError(
                f"config key '{key}.jpeg_decoder': nvjpeg decodes on a CUDA GPU and "
                "training.device is cpu; use pillow, or another device"
            )
        if setting["compile"] and processes > 1:
            raise ConfigError(
                f"config key '{key}.compile': not available for runs on several processes "
                f"({processes}: CUDA graphs cannot hold their gradient all-reduce); set it to false"
            )
        if setting["critical_examples"] and encoded:
            raise ConfigError(
                f"config key '{key}.critical_examples': not available on '{encoded[0]}', stored "
                "as JPEG files (the search perturbs stored pixels); set it to 0"
            )
        if setting["record_examples"] and setting["train_eval_images"] is not None:
            raise ConfigError(
                f"config key '{key}.record_examples': the record needs every training example "
                "evaluated each epoch, and train_eval_images limits that; unset one of them"
            )


def _training_settings(training: dict) -> dict[str, dict]:
    """The training settings each config key stands for: `training`, and every
    `training.models.{model}` and `training.regularizers.{regularizer}` with its overrides on
    top."""
    return {"training": training} | {
        f"training.{kind}.{name}": {**training, **overrides}
        for kind in OVERRIDES
        for name, overrides in training[kind].items()
    }


def _check_critical(training: dict) -> None:
    """Critical samples are stored in the per-example record: they need it on."""
    if training["record_examples"]:
        return
    for key, setting in _training_settings(training).items():
        if setting["critical_examples"]:
            raise ConfigError(
                f"config key '{key}.critical_examples': {setting['critical_examples']} critical "
                "samples need training.record_examples: true (they are stored in examples.h5); "
                "set it, or set critical_examples to 0"
            )


def _check_aux_heads(config: dict) -> None:
    """An auxiliary loss needs a model with an auxiliary head."""
    for grid in config["runs"]:
        for model, regularizer in itertools.product(grid["models"], grid["regularizers"]):
            if run_config(config, model, regularizer, 0).aux_loss_weight and not (
                MODELS[model].aux_head
            ):
                heads = ", ".join(name for name, spec in MODELS.items() if spec.aux_head)
                raise ConfigError(
                    f"config key 'training.aux_loss_weight': model '{model}' has no auxiliary "
                    f"head (models with one: {heads}); set it under training.models for those"
                )


def _check_logging(logging: dict) -> None:
    """TensorBoard's writer needs its package, an optional extra."""
    if logging.get("tensorboard") and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "config key 'logging.tensorboard': needs the tensorboard package, which is not "
            "installed; pip install -e '.[tensorboard]', or set it to false"
        )


def _check_precision(training: dict) -> None:
    """tf32 exists on CUDA GPUs only: refuse it for runs pinned to the CPU."""
    for key, setting in _training_settings(training).items():
        if setting["device"] == "cpu" and setting["precision"] == "tf32":
            raise ConfigError(
                f"config key '{key}.precision': tf32 needs a CUDA GPU and training.device is "
                "cpu; use bf16 or fp32, or another device"
            )


def _check_model(name: str, key: str) -> None:
    if name not in MODELS:
        hint = _did_you_mean(name, MODELS)
        raise ConfigError(
            f"config key '{key}': unknown model '{name}'; {hint}known: {', '.join(MODELS)}"
        )


def _did_you_mean(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def _variant_names(names: list) -> list[str]:
    """An unquoted `true` in YAML is a boolean: read it as the variant `true`."""
    return ["true" if v is True else str(v) for v in names]


def run_table(config: dict) -> pd.DataFrame:
    """The experiment grid: one row per training run, duplicates across grids dropped."""
    rows = [
        combination
        for grid in config["runs"]
        for combination in itertools.product(
            grid["datasets"], grid["variants"], grid["models"], grid["regularizers"], grid["seeds"]
        )
    ]
    return pd.DataFrame(rows, columns=RUN_FIELDS).drop_duplicates(ignore_index=True)


# Keys of `training` that override its values for one model or one regularizer.
OVERRIDES = ("models", "regularizers")


def run_config(config: dict, model: str, regularizer: str, seed: int, threads: int = 1):
    """The RunConfig of one run: study-wide training values, then the model's overrides, then
    the regularizer's (a regime such as Toneva et al.'s fixed budget under crop+wd)."""
    training = {k: v for k, v in config["training"].items() if k not in OVERRIDES}
    training.update(config["training"]["models"].get(model, {}))
    training.update(config["training"].get("regularizers", {}).get(regularizer, {}))
    tensorboard = config.get("logging", {}).get("tensorboard", False)
    return RunConfig(
        model=model, regularizer=regularizer, seed=int(seed), threads=threads,
        tensorboard=tensorboard, **training,
    )  # fmt: skip


def variant_seed(config: dict, variant: str) -> int:
    """The noise seed of one variant: its own override, else the study's."""
    return config["variants"]["seeds"].get(variant, config["variants"]["seed"])
