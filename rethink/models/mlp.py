"""Multi-layer perceptrons on flattened pixels (Zhang et al. 2017, Table 1: MLP 1x512, 3x512)."""

import math

from torch import nn


class MLP(nn.Sequential):
    def __init__(self, input_shape, n_classes: int, n_hidden: int, width: int = 512, dropout=0.0):
        """input_shape: (C, H, W); n_hidden layers of `width` ReLU units, then a linear layer."""
        layers: list[nn.Module] = [nn.Flatten()]
        n_in = math.prod(input_shape)
        for _ in range(n_hidden):
            layers += [nn.Linear(n_in, width), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            n_in = width
        layers.append(nn.Linear(n_in, n_classes))
        super().__init__(*layers)
