"""The paper's models, by name. Each takes (input_shape as (C, H, W), n_classes, dropout).

To add a model: write its nn.Module in a module of this package and add one `ModelSpec` entry
to `MODELS` with its builder and its paper learning rate.
"""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from rethink.models.alexnet import SmallAlexNet
from rethink.models.inception import SmallInception
from rethink.models.mlp import MLP


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[..., nn.Module]  # (input_shape, n_classes, dropout) -> module
    lr: float  # initial learning rate, as in Zhang et al. 2017 (Section 4 of PAPER.md)
    min_size: int = 1  # the smallest input height and width it takes


MODELS: dict[str, ModelSpec] = {
    "mlp1x512": ModelSpec(lambda s, k, dropout: MLP(s, k, n_hidden=1, dropout=dropout), 0.01),
    "mlp3x512": ModelSpec(lambda s, k, dropout: MLP(s, k, n_hidden=3, dropout=dropout), 0.01),
    "alexnet": ModelSpec(SmallAlexNet, 0.01),
    "inception": ModelSpec(SmallInception, 0.1),
    "inception-nobn": ModelSpec(
        lambda s, k, dropout: SmallInception(s, k, batch_norm=False, dropout=dropout), 0.1
    ),
    # ImageNet (Table 2): torchvision's Inception V3, from scratch, without the auxiliary head
    # (TF-slim's training adds its loss at weight 0.4; the paper does not say): 23,834,568
    # parameters for 1,000 classes. Inputs of at least 75x75; the paper's are 299x299.
    "inception-v3": ModelSpec(lambda s, k, dropout: inception_v3(k, dropout), 0.1, min_size=75),
}


def models_taking(size: int) -> list[str]:
    """The models that take size x size inputs (the paper's CIFAR-10 models all take 28x28)."""
    return [name for name, spec in MODELS.items() if spec.min_size <= size]


def inception_v3(n_classes: int, dropout: float) -> nn.Module:
    from torchvision.models import inception_v3  # 1 s to import: only where it is built

    return inception_v3(
        weights=None, num_classes=n_classes, aux_logits=False, init_weights=True, dropout=dropout
    )


def build_model(name: str, input_shape, n_classes: int, dropout: float = 0.0) -> nn.Module:
    return MODELS[name].build(tuple(input_shape), n_classes, dropout=dropout)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
