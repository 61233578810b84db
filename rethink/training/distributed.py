"""Streamed training: data read through DataLoader workers, on one process or many
(torch.distributed data-parallel: NCCL on GPUs, gloo on CPUs). ImageNet runs train this way,
and so does any run asked to use several processes; other runs use rethink.training.loop.

What stays the same whatever the number of processes (rethink.training.streams): the sequence of
global batches (`batch_size` is the global batch; each of W processes takes batch_size / W of it),
the augmentation of every image, the initial weights, and the learning rate, which belongs to the
global batch: W does not change it. DDP averages the processes' gradients, so one step equals
the step of one process on the whole global batch, up to floating-point summation order. Two
things do depend on W: batch norm normalizes each process's share of the batch (as the paper's
asynchronous workers did), and dropout masks come from each process's own stream.

Metrics per epoch: loss, top-1 and top-5 accuracy on the test set and, in eval mode, on the
training set or a fixed random subset of it (`train_eval_images`). Checkpoints sit at epoch
boundaries and hold no random state (all of it derives from the seed and the epoch), so a run
resumes exactly, also on another number of processes or nodes.
"""

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from rethink.data.encoded import EncodedImages
from rethink.device import setup_device
from rethink.models import count_parameters
from rethink.training.loop import (
    HISTORY_COLUMNS,
    RunConfig,
    load_checkpoint,
    make_model,
    make_optimizer,
    memory_format,
    save_checkpoint,
    write_outputs,
)
from rethink.training.precision import autocast, resolve_precision, set_matmul_precision
from rethink.training.regularizers import parse_regularizer
from rethink.training.run_lock import run_folder_lock
from rethink.training.streams import (
    Examples,
    GlobalBatches,
    Shard,
    Transform,
    loader,
    open_split,
    stream_seed,
)

log = logging.getLogger(__name__)

STREAMED_COLUMNS = [*HISTORY_COLUMNS, "train_top5", "test_top5"]
SUBSET_SEED = 0  # the fixed random subsets of encoded datasets are the same in every run


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
        return self.rank == 0


def train_streamed(variant_path: str, run_dir: str, config: RunConfig) -> dict | None:
    """Train one run as this process's part; the leader writes the outputs and returns the
    summary, the others return None."""
    process = Process.from_environment()
    if not process.leader:
        return _train_process(variant_path, run_dir, config, process)
    with run_folder_lock(run_dir):  # the leader writes the run's files: one writer at a time
        return _train_process(variant_path, run_dir, config, process)


def _train_process(variant_path: str, run_dir: str, config: RunConfig, process: Process):
    device_name = config.device
    if device_name in ("auto", "cuda") and torch.cuda.is_available():
        device_name = f"cuda:{process.local_rank}"
    device = setup_device(device_name, config.threads, config.deterministic)
    if process.world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(variant_path, Path(run_dir), config, device, process)
    finally:
        if process.world > 1:
            dist.destroy_process_group()


def subset(n: int, size: int | None, shuffled_file: bool) -> np.ndarray:
    """`size` of the `n` examples: the first ones of a file stored in random order, else a
    fixed random choice (ImageNet is stored class by class)."""
    if size is None or size >= n:
        return np.arange(n)
    if shuffled_file:
        return np.arange(size)
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(n, size, replace=False))


@dataclass
class Streams:
    """A run's data as this process reads it."""

    batches: GlobalBatches  # this process's share of each global batch; its epoch is set
    train: torch.utils.data.DataLoader
    evaluation: dict  # split -> DataLoader of this process's shard, in eval order
    sizes: dict  # train, train_eval, test: images of the whole run
    input_shape: tuple
    n_classes: int


def _streams(variant_path: str, config: RunConfig, device, process: Process) -> Streams:
    regularizers = parse_regularizer(config.regularizer)
    augment, crop = "augment" in regularizers, "crop" in regularizers
    train_split, test_split = open_split(variant_path, "train"), open_split(variant_path, "test")
    train = Examples(train_split, Transform(config.crop_size, crop, augment, config.seed))
    plain = Transform(config.crop_size)
    train_eval, test = Examples(train_split, plain), Examples(test_split, plain)
    shuffled = not isinstance(train_split.images, EncodedImages)
    train_indices = subset(len(train), config.train_subset, shuffled)
    eval_indices = train_indices[subset(len(train_indices), config.train_eval_images, False)]
    test_indices = subset(len(test), config.test_subset, shuffled)
    place, workers = (process.rank, process.world), config.loader_workers
    batches = GlobalBatches(train_indices, config.batch_size, config.seed, *place)

    def eval_loader(examples, indices):
        return loader(examples, Shard(indices, config.eval_batch_size, *place), workers, device)

    return Streams(
        batches=batches,
        train=loader(train, batches, workers, device),
        evaluation={
            "train": eval_loader(train_eval, eval_indices),
            "test": eval_loader(test, test_indices),
        },  # fmt: skip
        sizes={
            "train": len(train_indices),
            "train_eval": len(eval_indices),
            "test": len(test_indices),
        },  # fmt: skip
        input_shape=tuple(train_eval[(0, 0)][0].shape),
        n_classes=len(train_split.classes),
    )


def _train(variant_path, run_dir: Path, config: RunConfig, device, process: Process):
    run_dir.mkdir(parents=True, exist_ok=True)
    precision = resolve_precision(config.precision, device)
    set_matmul_precision(precision, device)
    data = _streams(variant_path, config, device, process)
    n_eval, n_test = data.sizes["train_eval"], data.sizes["test"]

    def fresh_start():
        model = make_model(config, data.input_shape, data.n_classes, device)  # seeded: the
        return model, make_optimizer(config, model)  # same initial weights in every process

    model, optimizer = fresh_start()
    state = {"epoch": 0, "history": [], "step_losses": [], "seconds": 0.0, "fitted": False}
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.exists():
        resumed = load_checkpoint(checkpoint, config, model, optimizer)
        if resumed is None:  # the model may hold half a checkpoint: build it again
            model, optimizer = fresh_start()
        else:
            state = resumed
    net = model
    if process.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)

    if process.leader:
        log.info(
            "%s: %s (%d parameters) on %d process(es), %s in %s, %d train (%d per epoch) / %d "
            "test images, global batch %d, config %s",
            run_dir, config.model, count_parameters(model), process.world, device, precision,
            data.sizes["train"], len(data.batches) * config.batch_size, n_test,
            config.batch_size, config.config_hash(),
        )  # fmt: skip
    bar = tqdm(
        total=config.max_epochs, initial=state["epoch"], desc=str(run_dir), unit="epoch",
        mininterval=2.0, disable=not process.leader,
    )  # fmt: skip
    started = time.perf_counter() - state["seconds"]
    while not state["fitted"] and state["epoch"] < config.max_epochs:
        epoch = state["epoch"]
        lr = config.lr * config.lr_decay**epoch
        for group in optimizer.param_groups:
            group["lr"] = lr
        data.batches.epoch = epoch
        # dropout's stream, per process and epoch: a resumed run draws what it would have
        torch.manual_seed(stream_seed(config.seed, epoch, process.rank))
        losses = _train_epoch(net, optimizer, data.train, device, precision)
        if process.world > 1:  # each step's loss over the whole global batch
            dist.all_reduce(losses)
            losses /= process.world
        state["step_losses"] += losses.tolist()
        if process.world > 1:  # every process evaluates with the batch-norm statistics that
            for buffer in model.buffers():  # the checkpoint (process 0's model) holds
                dist.broadcast(buffer, 0)
        metrics = {
            split: _evaluate(model, loader_, device, precision, process.world)
            for split, loader_ in data.evaluation.items()
        }
        state["epoch"] += 1
        state["fitted"] = metrics["train"]["correct"] == n_eval
        state["seconds"] = time.perf_counter() - started
        train_m, test_m = metrics["train"], metrics["test"]
        row = [
            state["epoch"], len(state["step_losses"]), lr,
            train_m["loss"] / n_eval, train_m["correct"] / n_eval, test_m["loss"] / n_test,
            test_m["correct"] / n_test, state["seconds"], train_m["top5"] / n_eval,
            test_m["top5"] / n_test,
        ]  # fmt: skip
        state["history"].append(row)
        bar.set_postfix(train_acc=f"{row[4]:.4f}", test_acc=f"{row[6]:.4f}", refresh=False)
        bar.update()
        if not np.isfinite(row[3]):
            log.warning("%s: training loss diverged at epoch %d", run_dir, state["epoch"])
            break
        if state["epoch"] % config.checkpoint_every == 0 and not state["fitted"]:
            if process.leader:
                save_checkpoint(checkpoint, config, model, optimizer, state)
            if process.world > 1:
                dist.barrier()  # no process runs ahead of a checkpoint it may resume from
    bar.close()
    if not process.leader:
        return None
    last = state["history"][-1]
    execution = {
        "device": str(device), "precision": precision, "compile": False,
        "processes": process.world, "train_top5": last[8], "test_top5": last[9],
        "best_test_top5": max(row[9] for row in state["history"]),
    }  # fmt: skip
    summary = write_outputs(run_dir, config, state, model, execution, columns=STREAMED_COLUMNS)
    if not config.keep_checkpoint:
        checkpoint.unlink(missing_ok=True)
    return summary


def _train_epoch(net, optimizer, data, device, precision: str) -> torch.Tensor:
    """One pass over this process's share of the epoch's global batches; each step's loss."""
    net.train()
    fmt = memory_format(net)
    losses = []
    for x, y, _ in data:
        x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        y = y.to(device, non_blocking=True)
        with autocast(precision, device):
            logits = net(x).float()
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses).double().cpu()


@torch.inference_mode()
def _evaluate(model, data, device, precision: str, world: int) -> dict:
    """Summed loss, top-1 and top-5 correct counts over every process's shard, in eval mode.
    The plain module, not DDP: shards may differ by a batch, and DDP would wait for the
    others' forward passes."""
    model.eval()
    fmt = memory_format(model)
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    with autocast(precision, device):
        for x, y, _ in data:
            x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
            y = y.to(device, non_blocking=True)
            logits = model(x).float()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            hits = top == y[:, None]
            totals += torch.stack([
                F.cross_entropy(logits, y, reduction="sum").double(),
                hits[:, 0].sum().double(), hits.any(dim=1).sum().double(),
            ])  # fmt: skip
    if world > 1:
        dist.all_reduce(totals)
    loss, correct, top5 = totals.tolist()
    return {"loss": loss, "correct": int(correct), "top5": int(top5)}
