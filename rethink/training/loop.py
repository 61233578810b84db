"""One training run, as in Zhang et al. 2017, Section 4: SGD with momentum, a learning rate
decayed by a constant factor every 391 steps (the paper's CIFAR-10 epoch: RunConfig.lr_at), no
explicit regularization unless asked for, and a stop as soon as the network classifies the
whole training set correctly ("fitted"). ImageNet's runs follow TF's Inception recipe instead,
through the same loop and config keys: RMSProp (rethink.training.optimizers), an auxiliary
head's loss, label smoothing, batch norm without scale, and a moving average of the weights
evaluated beside them (rethink.training.averaging).

Every run trains in this one loop: on one process or many (torchrun, rethink.workflow.launch),
from batches held on the device or streamed by DataLoader workers (rethink.training.batches).
What varies is decided before the first epoch, in the context (device, precision, process group:
rethink.training.context) and the batch source; the loop reads neither flag nor device type.

On several processes, `batch_size` is the global batch: each process takes its share of it,
DistributedDataParallel averages the gradients, and one step equals the step of one process on
the whole batch up to floating-point summation order. Batch norm normalizes each process's share,
or fixed sub-batches of the global batch wherever they are (training.batch_norm_group:
rethink.training.batch_norm); dropout masks come from each process's own stream.

A checkpoint every few epochs (rethink.training.checkpoints) makes a killed job resume where it
stopped, with the history an uninterrupted run has, on any device and number of processes.
"""

import contextlib
import functools
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from rethink.models import build_model, count_parameters
from rethink.models.weights import save_weights, weights_spec
from rethink.observers import EpochEnd, observers_for
from rethink.runs import CHECKPOINT_FILE, WEIGHTS_FILE
from rethink.training.averaging import WeightAverage
from rethink.training.batch_norm import set_batch_norm, use_sub_batches
from rethink.training.batches import Batch, memory_format, open_batches
from rethink.training.checkpoints import load_checkpoint, save_checkpoint
from rethink.training.compiled import compile_seconds, step_begins
from rethink.training.context import Context, training_context
from rethink.training.evaluation import evaluate
from rethink.training.optimizers import make_optimizer
from rethink.training.outputs import write_outputs
from rethink.training.run_lock import run_folder_lock, workflow_job
from rethink.training.seeds import Stream, stream_seed
from rethink.training.settings import RunConfig

log = logging.getLogger(__name__)


def make_model(config: RunConfig, input_shape, n_classes: int, device) -> torch.nn.Module:
    """The run's model on `device`, in its memory format, with the same initial weights in
    every process."""
    torch.manual_seed(stream_seed(config.seed, 0, Stream.INIT))
    dropout = config.regularization.dropout
    head = {"aux_logits": True} if config.aux_loss_weight else {}
    model = build_model(config.model, input_shape, n_classes, dropout=dropout, **head)
    set_batch_norm(model, config.batch_norm_scale, config.batch_norm_decay)
    if group := config.batch_norm_group:
        model = use_sub_batches(model, group, -(-config.batch_size // config.processes // group))
    return model.to(device, memory_format=memory_format(model))


@dataclass(frozen=True)
class Objective:
    """What a step minimizes: the mean cross-entropy over the batch, with TF's label smoothing,
    plus the auxiliary head's, weighted, where the model has one (its output then is
    (logits, auxiliary logits), as torchvision's Inception V3 gives in training)."""

    label_smoothing: float = 0.0
    aux_weight: float = 0.0

    @classmethod
    def of(cls, config: RunConfig) -> "Objective":
        return cls(config.label_smoothing, config.aux_loss_weight)

    def __call__(self, output, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The summed loss over the batch, and the main logits (float32)."""
        logits, aux = (output[0], output[1]) if isinstance(output, tuple) else (output, None)
        logits = logits.float()
        loss = F.cross_entropy(logits, y, reduction="sum", label_smoothing=self.label_smoothing)
        if aux is not None:
            loss = loss + self.aux_weight * F.cross_entropy(
                aux.float(), y, reduction="sum", label_smoothing=self.label_smoothing
            )
        return loss, logits


def train_epoch(
    net,
    optimizer,
    batches: Iterable[Batch],
    context: Context,
    observers=(),
    lr_at=None,
    first_step=0,
    objective: Objective = Objective(),
    average: WeightAverage | None = None,
) -> torch.Tensor:
    """One pass over an epoch's batches, the first being step number `first_step`, each step at
    the rate `lr_at(step)` (None: the optimizer's), averaged into `average` after it; each
    step's mean loss over its whole (global) batch, as float64 on the CPU."""
    net.train()
    world = context.process.world
    losses = []
    for step, batch in enumerate(batches, start=first_step):
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        step_begins(context.device)
        with context.autocast():
            output = net(batch.x)
        # This process's summed loss over the global batch's size, times the processes: DDP's
        # mean of the processes' gradients is the gradient of the batch's mean loss, whatever
        # the shares' sizes (those of the last batch may differ).
        loss, logits = objective(output, batch.y)
        loss = loss * (world / batch.size)
        for observer in observers:
            observer.step(batch, logits)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if average is not None:
            average.update(step)
        losses.append(loss.detach())
    return context.sum(torch.stack(losses).double() / world).cpu()


def train_run(
    variant_path: str, run_dir: str, config: RunConfig, source_path: str | None = None
) -> dict | None:
    """Train one run, as this process's part of it; write history.csv, steps.csv, the
    observers' files (examples.h5 with `record_examples`, for which `source_path` names the
    dataset the variant was made from) and summary.json to `run_dir`. The leader process holds
    the run folder's lock throughout, writes the files and returns the summary; the others
    return None."""
    run_dir = Path(run_dir)
    with training_context(config) as context:
        leader = context.process.leader
        with run_folder_lock(run_dir) if leader else contextlib.nullcontext():
            batches = open_batches(variant_path, config, context)
            observers = observers_for(config, run_dir, batches, context, source_path)
            try:
                return _train(run_dir, config, context, batches, observers)
            finally:
                for observer in observers:
                    observer.close()


def _train(run_dir: Path, config: RunConfig, context: Context, batches, observers) -> dict | None:
    device, leader = context.device, context.process.leader
    n_classes, sizes = len(batches.classes), batches.sizes
    checkpoint = run_dir / CHECKPOINT_FILE

    def fresh_start():
        model = make_model(config, batches.input_shape, n_classes, device)
        state = {"epoch": 0, "history": [], "step_losses": [], "seconds": 0.0, "fitted": False,
                 "fitted_step": None}  # fmt: skip
        return model, make_optimizer(config, model), state | {"observers": {}}

    model, optimizer, state = fresh_start()
    if checkpoint.exists():
        resumed = load_checkpoint(checkpoint, config, model, optimizer)
        if resumed is None:  # the model may hold half a checkpoint: build it again
            model, optimizer, state = fresh_start()
        else:
            state = resumed
    average = None
    if config.average_decay is not None:
        average = WeightAverage(model, config.average_decay)
        if "average" in state:  # resumed: ~100 MB for Inception V3, not kept in the state
            average.load_state_dict(state.pop("average"))
    for observer in observers:
        observer.resume(state["observers"].get(observer.name))
    batches.use_memory_format(memory_format(model))
    net, evaluated = context.wrap(model, config.compile)  # what trains, what evaluates
    per_example = any(observer.wants_examples for observer in observers)
    train_split = "train" if per_example else "train_eval"

    if leader:
        log.info(
            "%s: %s (%d parameters) on %d process(es), %s in %s%s, %d train / %d test images, "
            "batch %d, config %s",
            run_dir, config.model, count_parameters(model), context.process.world, device,
            context.precision, ", compiled" if config.compile else "", sizes["train"],
            sizes["test"], config.batch_size, config.config_hash(),
        )  # fmt: skip
    bar = tqdm(
        total=config.max_epochs, initial=state["epoch"], desc=str(run_dir), unit="epoch",
        mininterval=2.0, disable=not leader,
    )  # fmt: skip
    started = time.perf_counter() - state["seconds"]
    end = None
    lr_at = functools.partial(config.lr_at, train_images=sizes["train"])
    objective = Objective.of(config)
    while not (state["fitted"] and config.stop_when_fitted) and state["epoch"] < config.max_epochs:
        epoch, first_step = state["epoch"], len(state["step_losses"])
        lr = lr_at(first_step)  # history's: the rate the epoch starts at
        torch.manual_seed(stream_seed(config.seed, epoch, Stream.DROPOUT, context.process.rank))
        losses = train_epoch(
            net, optimizer, batches.train(epoch), context, observers, lr_at, first_step,
            objective, average,
        )  # fmt: skip
        state["step_losses"] += losses.tolist()
        context.share_buffers(model)
        train = evaluate(
            evaluated, batches.evaluation(train_split), context, n_classes, per_example
        )
        test = evaluate(evaluated, batches.evaluation("test"), context, n_classes)
        averaged = {}
        if average is not None:
            context.share_buffers(average.model)
            for split, name in ((train_split, "train"), ("test", "test")):
                result = evaluate(average.model, batches.evaluation(split), context, n_classes)
                averaged |= {f"averaged_{name}_loss": result.loss,
                             f"averaged_{name}_acc": result.accuracy,
                             f"averaged_{name}_top5": result.top5_accuracy}  # fmt: skip
        # Fitted: every training example classified correctly; where the training accuracy is
        # measured on a subset (train_eval_images), a perfect subset is confirmed on them all.
        state["fitted"] = train.all_correct and (
            train.n == sizes["train"]
            or evaluate(evaluated, batches.evaluation("train"), context, n_classes).all_correct
        )
        state["epoch"] += 1
        if state["fitted"] and state.get("fitted_step") is None:
            state["fitted_step"] = len(state["step_losses"])
        state["seconds"] = time.perf_counter() - started
        state["history"].append({
            "epoch": state["epoch"], "step": len(state["step_losses"]), "lr": lr,
            "train_loss": train.loss, "train_acc": train.accuracy,
            "train_top5": train.top5_accuracy, "test_loss": test.loss,
            "test_acc": test.accuracy, "test_top5": test.top5_accuracy,
            "seconds": state["seconds"], **averaged,
        })  # fmt: skip
        end = EpochEnd(state["epoch"], len(state["step_losses"]), lr, train, test, model)
        for observer in observers:
            observer.epoch_end(end)
        bar.set_postfix(train_acc=f"{train.accuracy:.4f}", test_acc=f"{test.accuracy:.4f}",
                        refresh=False)  # fmt: skip
        bar.update()
        if not math.isfinite(train.loss):
            if leader:
                log.warning("%s: training loss diverged at epoch %d", run_dir, state["epoch"])
            break
        if (
            state["epoch"] % config.checkpoint_every == 0
            and not (state["fitted"] and config.stop_when_fitted)
            and state["epoch"] < config.max_epochs  # a resumed run has an epoch to train
        ):
            if leader:
                kept = {"observers": {o.name: o.state() for o in observers}}
                if average is not None:
                    kept["average"] = average.state_dict()
                save_checkpoint(checkpoint, config, model, optimizer, state | kept)
            context.barrier()  # no process runs ahead of a checkpoint it may resume from
    bar.close()

    files = {}
    for observer in observers:
        files |= observer.finish(end)
    if not leader:
        return None
    # The initial weights drawn again from the run's seed (a resumed run has them no more).
    initial = make_model(config, batches.input_shape, n_classes, torch.device("cpu"))
    spec = weights_spec(config, batches.input_shape, n_classes)
    kept_average = None if average is None else average.model
    files[run_dir / WEIGHTS_FILE] = lambda tmp: save_weights(
        tmp, initial, model, spec, kept_average
    )
    execution = {
        "device": str(device), "precision": context.precision, "compile": config.compile,
        "processes": context.process.world,
    }  # fmt: skip
    if config.compile:
        execution["compile_seconds"] = round(compile_seconds(), 3)
    summary = write_outputs(run_dir, config, state, model, execution, files, sizes)
    # A workflow's job leaves it for the workflow to remove once Snakemake has registered the
    # outputs (why: rethink.workflow.checkpoints).
    if not (config.keep_checkpoint or workflow_job()):
        checkpoint.unlink(missing_ok=True)
    return summary
