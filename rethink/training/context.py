"""Where and how a run trains, decided once before its first step: the device, the numeric
precision, this process's place among the run's processes, and the process group joining them
(torch.distributed: NCCL on GPUs, gloo on CPUs), with the few collectives the loop needs. On
one process every collective is the identity.
"""

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from rethink.device import setup_device
from rethink.training.compiled import compile_model
from rethink.training.precision import autocast, resolve_precision, set_matmul_precision
from rethink.training.settings import RunConfig


@dataclass(frozen=True)
class Process:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> "Process":
        """This process's place, from the variables torchrun sets (none: a single process)."""
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                   int(env.get("LOCAL_RANK", 0)))  # fmt: skip

    @property
    def leader(self) -> bool:
        """The process that writes the run's files."""
        return self.rank == 0


@dataclass(frozen=True)
class Context:
    device: torch.device
    precision: str  # resolved: fp32, tf32 or bf16 (rethink.training.precision)
    process: Process

    def autocast(self):
        return autocast(self.precision, self.device)

    def wrap(self, model: torch.nn.Module, compiled: bool) -> tuple[torch.nn.Module, ...]:
        """What trains and what evaluates `model`: compiled if asked; for training over several
        processes inside DistributedDataParallel, which averages the gradients, while
        evaluation uses the plain module (shards may differ by a batch, and DDP would wait for
        the other processes' forward passes)."""
        net = compile_model(model, self.device) if compiled else model
        if self.process.world == 1:
            return net, net
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids), net

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over every process, in place."""
        if self.process.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's `tensor` (first dimensions may differ), concatenated in rank order."""
        if self.process.world == 1:
            return tensor
        sizes = [
            torch.zeros(1, dtype=torch.int64, device=self.device) for _ in range(self.process.world)
        ]
        dist.all_gather(sizes, torch.tensor([len(tensor)], device=self.device))
        longest = int(max(sizes).item())
        padded = tensor.new_zeros((longest, *tensor.shape[1:]))
        padded[: len(tensor)] = tensor
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        return torch.cat([part[: int(n.item())] for part, n in zip(parts, sizes, strict=True)])

    def share_buffers(self, model: torch.nn.Module) -> None:
        """Process 0's buffers (batch-norm statistics) in every process: all evaluate the model a
        checkpoint holds."""
        if self.process.world > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)

    def barrier(self) -> None:
        if self.process.world > 1:
            dist.barrier()


@contextlib.contextmanager
def training_context(config: RunConfig):
    """This process's context for the run, with the process group joined for the block."""
    process = Process.from_environment()
    name = config.device
    if process.world > 1 and name in ("auto", "cuda") and torch.cuda.is_available():
        name = f"cuda:{process.local_rank}"
    device = setup_device(name, config.threads, config.deterministic)
    precision = resolve_precision(config.precision, device)
    set_matmul_precision(precision, device)
    if process.world == 1:
        yield Context(device, precision, process)
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield Context(device, precision, process)
        # All leave together, once the leader has written the outputs: a process tearing its
        # group down while another still uses it can abort (gloo: std::terminate).
        dist.barrier()
    finally:
        dist.destroy_process_group()
