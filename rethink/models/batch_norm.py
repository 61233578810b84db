"""Batch norm as TF's Inception configures it, for any model: without its scale (gamma fixed
at 1 and not trained: TF-slim's `scale=False`) and with TF's decay of the running statistics
(running = decay * running + (1 - decay) * batch's; torch's momentum is 1 - decay)."""

from torch import nn


def set_batch_norm(model: nn.Module, scale: bool = True, decay: float | None = None) -> None:
    """Every batch norm of `model` with or without its scale, and with running statistics of
    `decay` (None: as built)."""
    for module in model.modules():
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        if decay is not None:
            module.momentum = 1 - decay
        if not scale and module.affine:
            nn.init.ones_(module.weight)
            module.weight.requires_grad_(False)
