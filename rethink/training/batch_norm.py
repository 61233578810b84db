"""Batch norm as a run configures it, for any model.

TF's Inception conventions: without its scale (gamma fixed at 1 and not trained: TF-slim's
`scale=False`) and with TF's decay of the running statistics (running = decay * running +
(1 - decay) * the batch's; torch's momentum is 1 - decay).

Statistics over fixed sub-batches (`use_sub_batches`): in training, each batch norm normalizes
every `group` consecutive examples of the global batch with their own mean and variance, as
each of TF's asynchronous workers normalized its 32 images, and updates its running statistics
once per sub-batch in the global batch's order, gathering the sub-batches' statistics from
every process (one small all-gather per layer and step). The processes' shares of a global
batch start at sub-batch boundaries (rethink.training.streams.GlobalBatches), so 1, 2 or 4
processes compute the same run up to floating-point summation order.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F
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


class SubBatchNorm(nn.modules.batchnorm._BatchNorm):
    """A batch norm whose training statistics are those of sub-batches of `group` examples, of
    which a process holds at most `chunks` a step (the run's batch over its processes)."""

    def __init__(self, num_features: int, group: int, chunks: int, **options):
        super().__init__(num_features, **options)
        self.group, self.chunks = group, chunks

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected a batch of at least 2 dimensions, got {x.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.track_running_stats:
            return super().forward(x)
        chunks = x.split(self.group) if len(x) else ()
        if len(chunks) > self.chunks and dist.is_initialized() and dist.get_world_size() > 1:
            raise ValueError(f"{len(x)} examples: more than {self.chunks} sub-batches of "
                             f"{self.group} a process")  # fmt: skip
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
        d^k running + sum_j (1 - d) d^(k-1-j) statistic_j, with d = 1 - momentum. Every
        process's sub-batch statistics in one all-gather of a fixed size (padded rows marked
        invalid), with no wait for the host."""
        n = self.num_features
        size = max(self.chunks, len(chunks))  # more only on one process (a benchmark's batch)
        rows = self.running_mean.new_zeros((size, 2 * n + 1), dtype=torch.float64)
        for row, c in zip(rows, chunks, strict=False):
            dims = [0, *range(2, c.dim())]
            var, mean = torch.var_mean(c.double(), dim=dims, correction=int(c.numel() > n))
            row[:n], row[n : 2 * n], row[-1] = mean, var, 1
        rows = gather_equal(rows)
        valid = rows[:, -1]
        k = valid.sum()
        position = valid.cumsum(0) - 1  # of each valid row among the global batch's sub-batches
        decay = 1 - self.momentum
        weights = (1 - decay) * decay ** (k - 1 - position) * valid
        update = (weights[:, None] * rows[:, :-1]).sum(0)
        keep = decay**k
        self.running_mean.mul_(keep).add_(update[:n].to(self.running_mean.dtype))
        self.running_var.mul_(keep).add_(update[n:].to(self.running_var.dtype))
        self.num_batches_tracked.add_(k.long())


def gather_equal(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's `tensor` (the same shape in each), concatenated in rank order."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor)
    return torch.cat(parts)


def use_sub_batches(module: nn.Module, group: int, chunks: int) -> nn.Module:
    """`module` with every batch norm replaced by a SubBatchNorm over `group` examples, at most
    `chunks` of them a process, that holds its parameters and buffers (the same state_dict),
    as torch's convert_sync_batchnorm does for SyncBatchNorm."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if module.momentum is None:
            raise ValueError("statistics over sub-batches need a batch norm momentum (decay)")
        sub = SubBatchNorm(
            module.num_features, group, chunks, eps=module.eps, momentum=module.momentum,
            affine=module.affine, track_running_stats=module.track_running_stats,
        )  # fmt: skip
        for name, tensor in [*module.named_parameters(recurse=False),
                             *module.named_buffers(recurse=False)]:  # fmt: skip
            setattr(sub, name, tensor)
        return sub.train(module.training)
    for name, child in module.named_children():
        module.add_module(name, use_sub_batches(child, group, chunks))
    return module
