"""The small AlexNet of Zhang et al. 2017 (Table 1), after TensorFlow's CIFAR-10 tutorial.

Two [conv 5x5 (64) -> max-pool 3x3 stride 2 -> local response norm] blocks, then fully
connected layers of 384 and 192 units and a linear classifier: 1,387,786 parameters on 28x28x3.
"""

import torch
import torch.nn.functional as F
from torch import nn


class LocalResponseNorm(nn.Module):
    """x / (k + alpha * mean of x^2 over `size` neighbouring channels)^beta, as
    nn.LocalResponseNorm (equal to rounding), with the window sum as a 1x1 convolution by a
    banded 0/1 matrix: one matrix product, in float32 also under bf16 autocast, in the input's
    memory format and dtype. PyTorch's own pools in 3-D: avg_pool3d's CUDA backward has no
    deterministic kernel (every AlexNet run on a GPU would be irreproducible), and on the CPU its
    pool and a 2-D one over a (channels, pixels) view took half of AlexNet's training time."""

    def __init__(self, size: int, alpha: float, beta: float, k: float):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self._windows: dict[tuple[int, torch.device], torch.Tensor] = {}  # made once, not a step

    def window(self, channels: int, device) -> torch.Tensor:
        """Weights of the window mean: output channel i averages input channels i - size // 2
        to i + (size - 1) // 2 (zero beyond the edges, still divided by size, as PyTorch)."""
        if (channels, device) not in self._windows:
            offset = torch.arange(channels, device=device)
            offset = offset[None, :] - offset[:, None]  # input minus output channel
            inside = (offset >= -(self.size // 2)) & (offset <= (self.size - 1) // 2)
            self._windows[channels, device] = (inside.float() / self.size)[:, :, None, None]
        return self._windows[channels, device]

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):
            squares = x.float().square()
            mean = F.conv2d(squares, self.window(x.shape[1], x.device))
            # Back in the input's dtype: under autocast the next layer rounds to bfloat16 anyway
            # (same numbers), and a float32 activation would cost a copy (AlexNet 5% faster).
            return (x / mean.mul(self.alpha).add(self.k).pow(self.beta)).to(x.dtype)


def local_response_norm() -> LocalResponseNorm:
    # TensorFlow's tf.nn.lrn(depth_radius=4, bias=1, alpha=0.001 / 9, beta=0.75) as in the tutorial.
    # PyTorch divides alpha by the window size (2 * 4 + 1 = 9), TensorFlow does not: alpha = 0.001.
    return LocalResponseNorm(size=9, alpha=0.001, beta=0.75, k=1.0)


class SmallAlexNet(nn.Module):
    """The paper's at width 1; `width` scales every layer's units (0.25: 16 filters per
    convolution, 96 and 48 hidden units)."""

    def __init__(self, input_shape, n_classes: int, dropout: float = 0.0, width: float = 1.0):
        super().__init__()
        channels, height, size = input_shape
        filters, fc1, fc2 = (round(units * width) for units in (64, 384, 192))
        self.features = nn.Sequential(
            nn.Conv2d(channels, filters, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),  # SAME pooling: 28 -> 14
            local_response_norm(),
            nn.Conv2d(filters, filters, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),  # 14 -> 7
            local_response_norm(),
        )
        pooled = _pooled(_pooled(height)) * _pooled(_pooled(size)) * filters
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(pooled, fc1),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(fc1, fc2),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(fc2, n_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def _pooled(size: int) -> int:
    """Output size of a 3x3, stride-2 max-pool with padding 1."""
    return (size - 1) // 2 + 1
