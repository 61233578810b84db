"""A run's optimizer: SGD with momentum (the paper's, torch's), or RMSProp as TensorFlow defines
it (TF's Inception recipe), with weight decay on every parameter or on the weights of
convolutions and linear layers only (TF-slim's).

TF's RMSProp (tf.compat.v1.train.RMSPropOptimizer, with momentum) differs from torch's in three
ways, each of which changes the run: epsilon sits inside the square root, the mean square
starts at one (torch's at zero), and the learning rate enters the momentum buffer (torch's
multiplies it after). Per parameter, with g the gradient plus weight decay times the weight:

    ms  <- decay * ms + (1 - decay) * g^2
    mom <- momentum * mom + lr * g / sqrt(ms + epsilon)
    w   <- w - mom

With epsilon 1, as TF's recipe has it, sqrt(ms + 1) stays within a fraction of a percent of 1
while gradients are small, and the update is momentum SGD's (docs/imagenet.md#the-recipe).
"""

import torch

from rethink.training.settings import RunConfig


class TFRMSProp(torch.optim.Optimizer):
    """RMSProp with momentum as TensorFlow 1 computes it (the equations above)."""

    def __init__(self, params, lr: float, decay=0.9, momentum=0.9, epsilon=1.0, weight_decay=0.0):
        defaults = {"lr": lr, "decay": decay, "momentum": momentum, "epsilon": epsilon,
                    "weight_decay": weight_decay}  # fmt: skip
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a gradient, each group's tensors at once
        (torch's _foreach kernels, as torch's own optimizers: a few launches, not a few per
        tensor)."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if not self.state[p]:
                    self.state[p] |= {"ms": torch.ones_like(p), "mom": torch.zeros_like(p)}
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            ms = [self.state[p]["ms"] for p in params]
            mom = [self.state[p]["mom"] for p in params]
            torch._foreach_mul_(ms, group["decay"])
            torch._foreach_addcmul_(ms, grads, grads, value=1 - group["decay"])
            denominator = torch._foreach_add(ms, group["epsilon"])
            torch._foreach_sqrt_(denominator)
            torch._foreach_mul_(mom, group["momentum"])
            torch._foreach_addcdiv_(mom, grads, denominator, value=group["lr"])
            torch._foreach_sub_(params, mom)


def decayed(model: torch.nn.Module, on: str) -> set[torch.nn.Parameter]:
    """The parameters weight decay applies to: all, or (`weights`) those of convolutions and
    linear layers named weight."""
    if on == "all":
        return set(model.parameters())
    layers = (torch.nn.modules.conv._ConvNd, torch.nn.Linear)
    return {m.weight for m in model.modules() if isinstance(m, layers)}


def make_optimizer(config: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The run's optimizer over the parameters that train, weight decay (under the `wd`
    regularizer) on `config.weight_decay_on` of them."""
    trained = [p for p in model.parameters() if p.requires_grad]
    on = decayed(model, config.weight_decay_on)
    wd = config.regularization.weight_decay
    groups = [
        {"params": [p for p in trained if p in on], "weight_decay": wd},
        {"params": [p for p in trained if p not in on], "weight_decay": 0.0},
    ]
    groups = [group for group in groups if group["params"]]
    if config.optimizer == "rmsprop":
        return TFRMSProp(
            groups, lr=config.lr, decay=config.rmsprop_decay, momentum=config.momentum,
            epsilon=config.rmsprop_epsilon,
        )  # fmt: skip
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
