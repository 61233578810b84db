"""Batch norm as a run configures it, for any model.

TF's Inception conventions: without its scale (gamma fixed at 1 and not trained: TF-slim's
`scale=False`) and with TF's decay of the running statistics (running = decay * running +
(1 - decay) * the batch's; torch's momentum is 1 - decay).

Statistics over fixed sub-batches (`use_sub_batches`): in training, each batch norm normalizes
every `group` consecutive examples of the global batch with their own mean and variance, as
each of TF's asynchronous workers normalized its 32 images, and updates its running statistics
once per sub-batch in the global batch's order, gathering the sub-batches' statistics from
every process. The processes' shares of a global batch start at sub-batch boundaries
(rethink.training.streams.GlobalBatches), so 1, 2 or 4 processes compute the same run up to
floating-point summation order.
"""

import torch
import torch.nn.functional as F
from torch import nn

from rethink.training.context import gather_rows


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


class SubBatchNorm(nn.modules.batchnorm._BatchNorm):
    """A batch norm whose training statistics are those of sub-batches of `group` examples."""

    def __init__(self, num_features: int, group: int, **options):
        super().__init__(num_features, **options)
        self.group = group

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected a batch of at least 2 dimensions, got {x.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.track_running_stats:
            return super().forward(x)
        chunks = x.split(self.group) if len(x) else ()
        normalized = [
            F.batch_norm(c, None, None, self.weight, self.bias, True, 0.0, self.eps) for c in chunks
        ]
        self._update_running_statistics(chunks)
        if not normalized:  # an empty share: part of the step all the same
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return torch.cat(normalized)

    @torch.no_grad()
    def _update_running_statistics(self, chunks) -> None:
        """One update per sub-batch of the global batch, in order: after k of them, running =
        d^k running + sum_j (1 - d) d^(k-1-j) statistic_j, with d = 1 - momentum."""
        dims = [0, *range(2, chunks[0].dim())] if chunks else []
        stats = torch.stack([
            torch.cat([c.float().mean(dims), c.float().var(dims, unbiased=len(c) > 1)])
            for c in chunks
        ]) if chunks else self.running_mean.new_zeros((0, 2 * self.num_features))  # fmt: skip
        stats = gather_rows(stats)
        k = len(stats)
        if k == 0:
            return
        decay = 1 - self.momentum
        weights = (1 - decay) * decay ** torch.arange(
            k - 1, -1, -1, dtype=torch.float64, device=stats.device
        )
        mean, var = (weights[:, None] * stats.double()).sum(0).split(self.num_features)
        self.running_mean.mul_(decay**k).add_(mean.to(self.running_mean.dtype))
        self.running_var.mul_(decay**k).add_(var.to(self.running_var.dtype))
        self.num_batches_tracked.add_(k)


def use_sub_batches(module: nn.Module, group: int) -> nn.Module:
    """`module` with every batch norm replaced by a SubBatchNorm over `group` examples that
    holds its parameters and buffers (the same state_dict), as torch's convert_sync_batchnorm
    does for SyncBatchNorm."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if module.momentum is None:
            raise ValueError("statistics over sub-batches need a batch norm momentum (decay)")
        sub = SubBatchNorm(
            module.num_features, group, eps=module.eps, momentum=module.momentum,
            affine=module.affine, track_running_stats=module.track_running_stats,
        )  # fmt: skip
        for name, tensor in [*module.named_parameters(recurse=False),
                             *module.named_buffers(recurse=False)]:  # fmt: skip
            setattr(sub, name, tensor)
        return sub.train(module.training)
    for name, child in module.named_children():
        module.add_module(name, use_sub_batches(child, group))
    return module
