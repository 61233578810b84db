"""Explicit regularizers (Zhang et al. 2017, Section 3), combinable with `+`: e.g. `crop+wd`.

Batch norm is not among them: it is the model choice `inception` versus `inception-nobn`.
"""

from rethink import RethinkError

REGULARIZERS = {
    "none": "no explicit regularization (the randomization tests)",
    "wd": "weight decay, coefficient training.weight_decay",
    "crop": "a random 28x28 crop instead of the center crop",
    "augment": "random crop, horizontal flip, brightness, saturation, hue and contrast jitter",
    "dropout": "dropout before the classifier, rate training.dropout",
}


class RegularizerNameError(RethinkError):
    pass


def parse_regularizer(name: str) -> frozenset[str]:
    """The set of regularizers that `name` combines; `none` is the empty set."""
    parts = name.split("+")
    unknown = [p for p in parts if p not in REGULARIZERS]
    if unknown:
        raise RegularizerNameError(
            f"unknown regularizer '{unknown[0]}' in '{name}'; known: {', '.join(REGULARIZERS)}, "
            "combined with +, e.g. crop+wd"
        )
    if len(set(parts)) != len(parts) or ("none" in parts and len(parts) > 1):
        raise RegularizerNameError(
            f"regularizer '{name}' repeats a name or combines 'none' with others"
        )
    return frozenset(parts) - {"none"}
