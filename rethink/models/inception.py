"""The small Inception of Zhang et al. 2017 (Table 1 and their Figure 3), with or without BN.

conv module = conv (SAME) -> batch norm -> ReLU; the batch norm has a learned offset per
channel but no scale, so the count is one weight per kernel entry plus one offset per output
channel: 1,649,402 parameters on 28x28x3 with batch norm and without (there the conv's own bias
is the offset).
"""

import torch
from torch import nn


class ShiftBatchNorm2d(nn.BatchNorm2d):
    """Batch norm with a learned shift per channel and no scale (the paper's count). The shift
    is batch norm's own bias, so one kernel normalizes and shifts: under bf16 autocast its output
    stays bfloat16, where a float32 shift added afterwards made every activation float32 (1.2x
    slower training and evaluation on the CPU, measured)."""

    def __init__(self, channels: int):
        super().__init__(channels, affine=False)
        self.bias = nn.Parameter(torch.zeros(channels))


class ConvModule(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, batch_norm=True):
        super().__init__()
        # A conv bias before batch norm would be cancelled by its mean subtraction.
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=not batch_norm)
        self.norm = ShiftBatchNorm2d(c_out) if batch_norm else nn.Identity()

    def forward(self, x):
        return torch.relu(self.norm(self.conv(x)))


class InceptionModule(nn.Module):
    """concat[1x1 conv module (c1), 3x3 conv module (c3)]."""

    def __init__(self, c_in: int, c1: int, c3: int, batch_norm: bool):
        super().__init__()
        self.branch1 = ConvModule(c_in, c1, 1, batch_norm=batch_norm)
        self.branch3 = ConvModule(c_in, c3, 3, batch_norm=batch_norm)
        self.c_out = c1 + c3

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch3(x)], dim=1)


class DownsampleModule(nn.Module):
    """concat[3x3 stride-2 conv module (c3), 3x3 stride-2 max-pool]."""

    def __init__(self, c_in: int, c3: int, batch_norm: bool):
        super().__init__()
        self.conv = ConvModule(c_in, c3, 3, stride=2, batch_norm=batch_norm)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.c_out = c3 + c_in

    def forward(self, x):
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


# (kind, filters): "I" = Inception(c1, c3), "D" = Downsample(c3)
LAYOUT = [
    ("I", (32, 32)),
    ("I", (32, 48)),
    ("D", (80,)),
    ("I", (112, 48)),
    ("I", (96, 64)),
    ("I", (80, 80)),
    ("I", (48, 96)),
    ("D", (96,)),
    ("I", (176, 160)),
    ("I", (176, 160)),
]


class SmallInception(nn.Module):
    """The paper's at width 1; `width` scales every conv module's filters (a narrowed one)."""

    def __init__(
        self, input_shape, n_classes: int, batch_norm=True, dropout: float = 0.0, width=1.0
    ):
        super().__init__()
        stem = round(96 * width)
        layers = [ConvModule(input_shape[0], stem, 3, batch_norm=batch_norm)]
        c_in = stem
        for kind, filters in LAYOUT:
            block = InceptionModule if kind == "I" else DownsampleModule
            filters = [round(f * width) for f in filters]
            layers.append(block(c_in, *filters, batch_norm=batch_norm))
            c_in = layers[-1].c_out
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_in, n_classes)
        if not batch_norm:
            # Without batch norm, PyTorch's default init shrinks the signal through the 11 stacked
            # layers (features' std 0.015 on whitened inputs) and SGD stalls at the majority
            # class (measured: 15.6% train accuracy on 256 random labels after 60 epochs at lr
            # 0.01, 0.03 and 0.1). He init keeps the scale (std ~1.7). The paper does not give
            # its init; batch norm makes the choice moot for `inception`.
            for module in self.features.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    nn.init.zeros_(module.bias)

    def forward(self, x):
        x = self.features(x).mean(dim=(2, 3))  # global average pool
        return self.classifier(self.dropout(x))
