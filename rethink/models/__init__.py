"""The paper's models, by name; the registry imports no torch, so that planning a study does
not (each entry names its builder, imported when a run builds it).

A builder takes (input_shape as (C, H, W) after the crop, n_classes, dropout=rate) and the
entry's options as keywords, and returns an nn.Module whose output has n_classes logits. To
add a model, see docs/extending.md: one module and one `ModelSpec` entry in `MODELS`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    builder: str  # "module:callable", e.g. "rethink.models.mlp:MLP"
    lr: float  # initial learning rate, as in Zhang et al. 2017 (Section 4 of PAPER.md)
    options: dict = field(default_factory=dict)  # keywords for the builder
    min_size: int = 1  # the smallest input height and width it takes
    # Training cost: wall minutes per million training images on one V100-class GPU, with a
    # 2-4x margin (docs/slurm.md); what a cluster job asks for (config key `cluster` may
    # override it) and, slowest first, the order of figures and of the scheduler.
    minutes_per_million_images: float = 6.0
    # The paper's model this one stands in for (a narrowed one: its Table 1 row); None: itself.
    stands_for: str | None = None
    # Whether its builder takes aux_logits=True: an auxiliary head whose loss training adds
    # (training.aux_loss_weight), its output then (logits, auxiliary logits) in training mode.
    aux_head: bool = False

    def build_function(self):
        module, _, name = self.builder.partition(":")
        return getattr(importlib.import_module(module), name)


# The costs keep the ratios of the CPU's seconds per CIFAR-10 epoch (docs/speed.md): Inception
# 545, without batch norm 506, AlexNet 97, mlp3x512 6.0, mlp1x512 3.7 (overhead dominates the
# MLPs on a GPU: they are not scaled down as far). Inception v3: an estimate, not measured.
MODELS: dict[str, ModelSpec] = {
    "mlp1x512": ModelSpec(
        "rethink.models.mlp:MLP", 0.01, {"n_hidden": 1}, minutes_per_million_images=0.5
    ),
    "mlp3x512": ModelSpec(
        "rethink.models.mlp:MLP", 0.01, {"n_hidden": 3}, minutes_per_million_images=0.8
    ),
    "alexnet": ModelSpec(
        "rethink.models.alexnet:SmallAlexNet", 0.01, minutes_per_million_images=1.5
    ),
    "inception": ModelSpec(
        "rethink.models.inception:SmallInception", 0.1, minutes_per_million_images=6
    ),
    "inception-nobn": ModelSpec(
        "rethink.models.inception:SmallInception",
        0.1,
        {"batch_norm": False},
        minutes_per_million_images=5.5,
    ),  # fmt: skip
    "inception-v3": ModelSpec(
        "rethink.models.inception_v3:inception_v3",
        0.1,
        min_size=75,
        minutes_per_million_images=12,
        aux_head=True,
    ),  # fmt: skip
}


def narrowed(name: str, width: float, minutes_per_million_images: float) -> ModelSpec:
    """The registered model `name` with every layer's units times `width`: a CPU concession
    under a name of its own, standing for `name` in Table 1."""
    spec = MODELS[name]
    return ModelSpec(
        spec.builder, spec.lr, {**spec.options, "width": width},
        minutes_per_million_images=minutes_per_million_images, stands_for=name,
    )  # fmt: skip


# CPU concessions: the paper's AlexNet and Inception with a quarter of the filters and units in
# every layer (87,338 and 104,102 parameters on 28x28x1, about 22 and 26 per mnist5k training
# digit against the paper's 28 and 33 per CIFAR-10 image; docs/science.md).
MODELS["alexnet-quarter"] = narrowed("alexnet", 0.25, minutes_per_million_images=0.8)
MODELS["inception-quarter"] = narrowed("inception", 0.25, minutes_per_million_images=1.5)


def models_slowest_first() -> list[str]:
    """The registered models by training cost, slowest first (equal costs in registry order):
    the order figures list them in, and in which the scheduler starts ready runs."""
    return sorted(MODELS, key=lambda name: -MODELS[name].minutes_per_million_images)


def paper_model(name: str) -> str:
    """The model of Zhang et al. 2017 that `name` is or stands in for."""
    spec = MODELS.get(name)
    return (spec.stands_for if spec else None) or name


def models_taking(size: int) -> list[str]:
    """The models that take size x size inputs (the paper's CIFAR-10 models all take 28x28)."""
    return [name for name, spec in MODELS.items() if spec.min_size <= size]


def build_model(
    name: str, input_shape, n_classes: int, dropout: float = 0.0, **options
) -> nn.Module:
    """Model `name` for inputs of `input_shape` (C, H, W): its entry's options, then `options`
    (aux_logits=True for an entry with an auxiliary head)."""
    spec = MODELS[name]
    options = spec.options | options
    return spec.build_function()(tuple(input_shape), n_classes, dropout=dropout, **options)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
