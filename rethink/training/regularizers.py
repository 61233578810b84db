"""Explicit regularizers (Zhang et al. 2017, Section 3), combinable with `+`: e.g. `crop+wd`.

`wd` and `dropout` take an optional strength in their name, for sweeps (Arpit et al. 2017,
Section 5): `wd1e-4` is weight decay 1e-4, `dropout0.25` a dropout rate of 0.25; without one
they use `training.weight_decay` and `training.dropout`. Batch norm is not among them: it is the
model choice `inception` versus `inception-nobn`.
"""

import functools
import math
import re
from dataclasses import dataclass

from rethink import RethinkError

REGULARIZERS = {
    "none": "no explicit regularization (the randomization tests)",
    "wd": "weight decay, coefficient training.weight_decay (or wd{coefficient}, e.g. wd1e-4)",
    "crop": "a random 28x28 crop instead of the center crop",
    "augment": "random crop, horizontal flip, brightness, saturation, hue and contrast jitter",
    "dropout": "dropout before the classifier, rate training.dropout (or dropout{rate})",
}
# Regularizers that take a strength, and the range [low, high) it must lie in.
STRENGTHS = {"wd": (0.0, math.inf), "dropout": (0.0, 1.0)}
# ASCII only: `\d` and `\w` also match other scripts' digits, which float() reads too.
_PART = re.compile(r"(?P<kind>[a-z]+)(?P<strength>[0-9][\w.+-]*)?", re.ASCII)


class RegularizerNameError(RethinkError):
    pass


def parse_regularizer(name: str) -> dict[str, float | None]:
    """The regularizers that `name` combines, each with its strength (None: the configured
    default, or no strength at all); `none` is the empty dict."""
    parts = {}
    for part in name.split("+"):
        kind, value = _parse_part(part, name)
        if kind in parts:
            raise RegularizerNameError(f"regularizer '{name}' names {kind} twice")
        parts[kind] = value
    if "none" in parts and len(parts) > 1:
        raise RegularizerNameError(f"regularizer '{name}' combines 'none' with others")
    parts.pop("none", None)
    return parts


@dataclass(frozen=True)
class Regularization:
    """What a regularizer name asks of training, strengths resolved."""

    crop: bool = False  # a random crop instead of the center one
    augment: bool = False  # random crop, flip and colour jitter
    weight_decay: float = 0.0
    dropout: float = 0.0

    @property
    def randomizes_inputs(self) -> bool:
        return self.crop or self.augment


@functools.cache
def regularization(name: str, weight_decay: float, dropout: float) -> Regularization:
    """The regularizer combination `name` as training applies it; `weight_decay` and `dropout`:
    the configured strengths, for the kinds named without one."""
    parts = parse_regularizer(name)
    return Regularization(
        crop="crop" in parts,
        augment="augment" in parts,
        weight_decay=strength(name, "wd", weight_decay),
        dropout=strength(name, "dropout", dropout),
    )


def strength(name: str, kind: str, default: float) -> float:
    """The strength of regularizer `kind` in the combination `name`: its own if the name gives
    one, `default` if the kind is there without one, 0 if it is absent."""
    parts = parse_regularizer(name)
    if kind not in parts:
        return 0.0
    return default if parts[kind] is None else parts[kind]


def _parse_part(part: str, name: str) -> tuple[str, float | None]:
    match = _PART.fullmatch(part)
    kind = match["kind"] if match else part
    if kind not in REGULARIZERS:
        raise RegularizerNameError(
            f"unknown regularizer '{part}' in '{name}'; known: {', '.join(REGULARIZERS)}, "
            "combined with +, e.g. crop+wd; wd and dropout take a strength, e.g. dropout0.25"
        )
    if match["strength"] is None:
        return kind, None
    if kind not in STRENGTHS:
        raise RegularizerNameError(
            f"regularizer '{part}' in '{name}': {kind} takes no strength; write {kind}"
        )
    low, high = STRENGTHS[kind]
    try:
        value = float(match["strength"])
    except ValueError:
        value = math.nan
    if not low <= value < high:
        example = {"wd": "wd1e-4", "dropout": "dropout0.25"}[kind]
        raise RegularizerNameError(
            f"regularizer '{part}' in '{name}': {kind} strength '{match['strength']}' is not a "
            f"number in [{low:g}, {high:g}); write e.g. {example}"
        )
    return kind, value
