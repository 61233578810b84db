"""An exponential moving average of a model's weights, evaluated beside the weights themselves
(TF's Inception recipe evaluates only the average, with decay 0.9999).

As TF's tf.train.ExponentialMovingAverage(decay, num_updates=step): the averages start at the
initial weights, and the decay of step t (from 0) is min(decay, (1 + t) / (10 + t)), so that
early averages follow the weights closely. It averages the floating-point parameters and
buffers (batch norm's running statistics: the Inception package averages those too) and copies
the others (batch norm's step counter).
"""

import copy

import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn


class WeightAverage:
    """The average of `model`'s weights (as `self.model`, a copy of it to evaluate)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.source = decay, model
        self.model = copy.deepcopy(model).requires_grad_(False)

    @staticmethod
    def _tensors(model: torch.nn.Module) -> list[torch.Tensor]:
        return [*model.parameters(), *model.buffers()]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Average in the model's weights after step number `step` (from 0)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        averages, currents = [], []
        pairs = zip(self._tensors(self.model), self._tensors(self.source), strict=True)
        for average, current in pairs:
            if average.is_floating_point():
                averages.append(average)
                currents.append(current.detach())
            else:
                average.copy_(current)
        get_ema_multi_avg_fn(decay)(averages, currents, None)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
