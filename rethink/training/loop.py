"""One training run, as in Zhang et al. 2017, Section 4: SGD with momentum, a learning rate
decayed by a constant factor every epoch, no explicit regularization unless asked for, and a stop
as soon as the network classifies the whole training set correctly ("fitted").

The whole dataset lives on the device as tensors: batches are index lookups, augmentation is
batched, there is no per-sample Python. A checkpoint every few epochs makes a killed job resume
exactly where it stopped, with the same history an uninterrupted run has; a checkpoint from
another device type (a job killed on the CPU and retried on a GPU) resumes too, with a new random
stream, and one that cannot be used is discarded with a warning: a checkpoint never stops a run.
"""

import dataclasses
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rethink.data.h5io import read_dataset
from rethink.device import setup_device
from rethink.files import atomic_path, write_together
from rethink.memorization import EXAMPLES_FILE
from rethink.memorization.critical import Lass, critical_samples, is_probe_epoch
from rethink.memorization.record import ExampleRecord
from rethink.memorization.record import margins as example_margins
from rethink.models import build_model, count_parameters
from rethink.training.compiled import compile_model, compile_seconds, step_begins
from rethink.training.precision import autocast, resolve_precision, set_matmul_precision
from rethink.training.preprocess import preprocess
from rethink.training.regularizers import parse_regularizer, strength
from rethink.training.run_lock import run_folder_lock
from rethink.training.settings import RunConfig

log = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    "epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
]  # fmt: skip


@dataclass
class DeviceData:
    """A variant's tensors on the training device; images as N x C x H x W."""

    train_images: torch.Tensor  # raw (uint8 or float32), for batch-wise augmentation
    train_labels: torch.Tensor
    train_inputs: torch.Tensor  # preprocessed with the center crop: evaluation, plain training
    test_images: torch.Tensor  # raw, for the critical-sample search
    test_inputs: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def in_memory_format(self, memory_format: torch.memory_format) -> "DeviceData":
        """The network inputs stored in `memory_format`, so that no step converts a batch."""
        return dataclasses.replace(
            self,
            train_inputs=self.train_inputs.contiguous(memory_format=memory_format),
            test_inputs=self.test_inputs.contiguous(memory_format=memory_format),
        )


def memory_format(model: torch.nn.Module) -> torch.memory_format:
    """channels_last for convolutional models, which trains them 20-30% faster on CPU (oneDNN)
    and GPU (cuDNN)."""
    convolutional = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    return torch.channels_last if convolutional else torch.contiguous_format


def make_model(config: RunConfig, input_shape, n_classes: int, device) -> torch.nn.Module:
    """The run's model on `device`, seeded, in its memory format."""
    torch.manual_seed(config.seed)
    dropout = strength(config.regularizer, "dropout", config.dropout)
    model = build_model(config.model, input_shape, n_classes, dropout=dropout)
    return model.to(device, memory_format=memory_format(model))


def make_optimizer(config: RunConfig, model: torch.nn.Module) -> torch.optim.SGD:
    """SGD with momentum; weight decay (on every parameter) only under the `wd` regularizer."""
    wd = strength(config.regularizer, "wd", config.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=wd
    )


def load_data(path: str | os.PathLike, config: RunConfig, device: torch.device) -> DeviceData:
    dataset = read_dataset(path)
    train = slice(config.train_subset)  # variant files are shuffled: a prefix is a random subset
    test = slice(config.test_subset)

    def images(array):
        return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous().to(device)

    def inputs(raw):
        chunks = raw.split(config.eval_batch_size)
        return torch.cat([preprocess(chunk, config.crop_size) for chunk in chunks])

    train_raw, test_raw = images(dataset.train.images[train]), images(dataset.test.images[test])
    return DeviceData(
        train_images=train_raw,
        train_labels=torch.from_numpy(dataset.train.labels[train]).to(device),
        train_inputs=inputs(train_raw),
        test_images=test_raw,
        test_inputs=inputs(test_raw),
        test_labels=torch.from_numpy(dataset.test.labels[test]).to(device),
        classes=dataset.classes,
    )


def train_epoch(
    model, optimizer, data: DeviceData, config: RunConfig, gen, hits: torch.Tensor | None = None
) -> torch.Tensor:
    """One pass over the training set in a random order; returns the loss of every step. With
    `hits` (one bool per training example), records whether each example's minibatch
    classified it correctly before the update (Toneva et al.'s presentations)."""
    regularizers = parse_regularizer(config.regularizer)
    crop, augment = "crop" in regularizers, "augment" in regularizers
    device = gen.device
    precision = resolve_precision(config.precision, device)
    model.train()
    order = torch.randperm(len(data.train_labels), generator=gen, device=device)
    losses = []
    for batch in order.split(config.batch_size):
        if crop or augment:
            x = preprocess(
                data.train_images[batch], config.crop_size, crop=crop, augment=augment, gen=gen
            )
        else:
            x = data.train_inputs[batch]
        step_begins(device)
        with autocast(precision, device):
            logits = model(x).float()
        loss = F.cross_entropy(logits, data.train_labels[batch])
        if hits is not None:
            hits[batch] = logits.detach().argmax(dim=1) == data.train_labels[batch]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses).cpu()


@dataclass
class Evaluation:
    """An eval-mode pass over a split: its mean loss and correct count, and per example the
    predicted class, loss and margin (rethink.memorization.record)."""

    loss: float
    correct: int
    predictions: torch.Tensor
    losses: torch.Tensor
    margins: torch.Tensor


@torch.inference_mode()
def evaluate(model, inputs, labels, batch_size: int, precision: str = "fp32") -> Evaluation:
    """Every example's prediction, loss and margin, in eval mode, in `precision` (resolved)."""
    model.eval()
    predictions, losses, margins = [], [], []
    # One autocast region for the whole pass: it casts each weight to bfloat16 once, not once
    # a batch (the weights do not change here; in training they change every step).
    with autocast(precision, inputs.device):
        for x, y in zip(inputs.split(batch_size), labels.split(batch_size), strict=True):
            logits = model(x).float()
            predictions.append(logits.argmax(dim=1))
            losses.append(F.cross_entropy(logits, y, reduction="none"))
            margins.append(example_margins(logits, y))
    predictions, losses = torch.cat(predictions), torch.cat(losses)
    totals = torch.stack([losses.sum(dtype=torch.float64), (predictions == labels).sum().double()])
    loss, correct = totals.tolist()  # one device sync per evaluation
    return Evaluation(loss / len(labels), int(correct), predictions, losses, torch.cat(margins))


def train_run(
    variant_path: str, run_dir: str, config: RunConfig, source_path: str | None = None
) -> dict:
    """Train one run; write history.csv, steps.csv and summary.json to `run_dir`, and with
    `config.record_examples` examples.h5, for which `source_path` names the dataset file the
    variant was made from (its original labels). It holds the run folder's lock throughout."""
    with run_folder_lock(run_dir):
        return _train(variant_path, Path(run_dir), config, source_path)


def _train(variant_path: str, run_dir: Path, config: RunConfig, source_path) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    device = setup_device(config.device, config.threads, config.deterministic)
    precision = resolve_precision(config.precision, device)
    set_matmul_precision(precision, device)
    data = load_data(variant_path, config, device)
    labels = example_labels(data, source_path, config) if config.record_examples else None

    def fresh_start():
        model = make_model(config, data.train_inputs.shape[1:], data.n_classes, device)
        gen = torch.Generator(device=device)
        gen.manual_seed(config.seed)
        state = {"epoch": 0, "history": [], "step_losses": [], "seconds": 0.0, "fitted": False}
        if config.record_examples:
            state["examples"] = ExampleRecord().state()
        return model, make_optimizer(config, model), gen, state

    model, optimizer, gen, state = fresh_start()
    data = data.in_memory_format(memory_format(model))
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.exists():
        resumed = load_checkpoint(
            checkpoint, config, model, optimizer,
            lambda saved, state: _restore_rng(saved, gen, config.seed, state["epoch"], checkpoint),
        )  # fmt: skip
        if resumed is None:  # the model may hold half a checkpoint: build it again
            model, optimizer, gen, state = fresh_start()
        else:
            state = resumed

    net = compile_model(model, device) if config.compile else model  # what trains and evaluates
    n_train, n_test = len(data.train_labels), len(data.test_labels)
    record = ExampleRecord.from_state(state["examples"]) if config.record_examples else None
    hits = torch.zeros(n_train, dtype=torch.bool, device=device) if record else None
    critical_sets = critical_set_indices(labels[2], n_test, config) if record else None

    def probe_critical():
        """CSR of the fixed sets at this epoch, with noise seeded by (seed, epoch); both sets
        searched as one batch."""
        gen = torch.Generator(device=device)
        gen.manual_seed(config.seed * 1_000_003 + state["epoch"])
        images = torch.cat([
            data.test_images[torch.as_tensor(critical_sets["test"], device=device)],
            data.train_images[torch.as_tensor(critical_sets["train"], device=device)],
        ])  # fmt: skip
        with autocast(precision, device):
            found = critical_samples(
                model, images, Lass.of(config), lambda x: preprocess(x, config.crop_size), gen,
                config.eval_batch_size,
            )  # fmt: skip
        n_test = len(critical_sets["test"])
        record.add_critical(state["epoch"], found[:n_test], found[n_test:])

    log.info(
        "%s: %s (%d parameters) on %s in %s%s, %d train / %d test images, config %s",
        run_dir, config.model, count_parameters(model), device, precision,
        ", compiled" if config.compile else "", n_train, n_test, config.config_hash(),
    )  # fmt: skip
    bar = tqdm(
        total=config.max_epochs, initial=state["epoch"], desc=str(run_dir), unit="epoch",
        mininterval=2.0,
    )  # fmt: skip
    started = time.perf_counter() - state["seconds"]
    while not state["fitted"] and state["epoch"] < config.max_epochs:
        lr = config.lr * config.lr_decay ** state["epoch"]
        for group in optimizer.param_groups:
            group["lr"] = lr
        state["step_losses"] += train_epoch(net, optimizer, data, config, gen, hits).tolist()
        train = evaluate(
            net, data.train_inputs, data.train_labels, config.eval_batch_size, precision
        )
        test = evaluate(net, data.test_inputs, data.test_labels, config.eval_batch_size, precision)
        if record is not None:
            record.add_epoch(train.predictions, train.losses, train.margins, hits)
        state["epoch"] += 1
        if config.critical_examples and is_probe_epoch(state["epoch"]):
            probe_critical()
        state["fitted"] = train.correct == n_train
        state["seconds"] = time.perf_counter() - started
        row = [
            state["epoch"], len(state["step_losses"]), lr, train.loss, train.correct / n_train,
            test.loss, test.correct / n_test, state["seconds"],
        ]  # fmt: skip
        state["history"].append(row)
        bar.set_postfix(train_acc=f"{row[4]:.4f}", test_acc=f"{row[6]:.4f}", refresh=False)
        bar.update()
        if not math.isfinite(train.loss):
            log.warning("%s: training loss diverged at epoch %d", run_dir, state["epoch"])
            break
        if state["epoch"] % config.checkpoint_every == 0 and not state["fitted"]:
            save_checkpoint(checkpoint, config, model, optimizer, state, _rng_state(gen))
    bar.close()
    if config.critical_examples and record.critical_epochs[-1:] != [state["epoch"]]:
        probe_critical()  # and at the last epoch

    examples = None
    if record is not None:

        def examples(tmp):
            record.write(tmp, *labels, critical_sets if config.critical_examples else None)

    execution = {"device": str(device), "precision": precision, "compile": config.compile}
    if config.compile:
        execution["compile_seconds"] = round(compile_seconds(), 3)
    summary = write_outputs(run_dir, config, state, model, execution, examples)
    if not config.keep_checkpoint:
        checkpoint.unlink(missing_ok=True)
    return summary


def example_labels(data: DeviceData, source_path, config: RunConfig) -> tuple:
    """Each training example's assigned label (the variant's, as loaded), original label (the
    source dataset's) and corrupted flag. Where the variant's classes are not the dataset's
    (`rademacher{k}`: random signs), every label is replaced, so every example is corrupted."""
    if source_path is None:
        raise ValueError("record_examples needs source_path, the variant's source dataset")
    source = read_dataset(source_path)
    assigned = data.train_labels.cpu().numpy()
    original = source.train.labels[slice(config.train_subset)]
    if data.classes != source.classes:
        return assigned, original, np.ones(len(assigned), bool)
    return assigned, original, assigned != original


def critical_set_indices(corrupted: np.ndarray, n_test: int, config: RunConfig) -> dict:
    """The fixed images whose CSR a run measures: the first `critical_examples` test images,
    and as many training images, half the first clean and half the first corrupted ones where
    both exist, else the first ones."""
    k = config.critical_examples
    clean, noisy = np.flatnonzero(~corrupted), np.flatnonzero(corrupted)
    if len(clean) and len(noisy):
        train = np.concatenate([clean[: k - k // 2], noisy[: k // 2]])
    else:
        train = np.arange(min(k, len(corrupted)))
    return {"test": np.arange(min(k, n_test)), "train": np.sort(train)}


def write_outputs(
    run_dir: Path,
    config: RunConfig,
    state: dict,
    model,
    execution,
    examples=None,
    columns=HISTORY_COLUMNS,
) -> dict:
    """history.csv, steps.csv, examples.h5 (if `examples` writes it) and summary.json, all or
    none; returns the summary."""
    history = pd.DataFrame(state["history"], columns=columns)
    losses = torch.tensor(state["step_losses"], dtype=torch.float64)
    block = config.loss_block_steps
    ends = list(range(block, len(losses) + 1, block)) or [len(losses)]
    steps = pd.DataFrame(
        {"step": ends, "train_loss": [losses[end - block : end].mean().item() for end in ends]}
    )
    last = history.iloc[-1]
    fitted = bool(state["fitted"])
    summary = {
        "train_acc": float(last.train_acc),
        "test_acc": float(last.test_acc),
        "best_test_acc": float(history.test_acc.max()),
        "fitted": fitted,
        "steps_to_fit": int(last.step) if fitted else None,
        "epochs": int(last.epoch),
        "steps": int(last.step),
        "seconds": float(last.seconds),
        "params": count_parameters(model),
        **execution,  # device, the precision it resolved to, compilation
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch": torch.__version__,
        "config_hash": config.config_hash(),
        "config": dataclasses.asdict(config),
    }
    # All or none; summary.json last: its presence means the run finished.
    writers = {
        run_dir / "history.csv": lambda tmp: history.to_csv(tmp, index=False),
        run_dir / "steps.csv": lambda tmp: steps.to_csv(tmp, index=False),
    }
    if examples is not None:
        writers[run_dir / EXAMPLES_FILE] = examples
    writers[run_dir / "summary.json"] = lambda tmp: tmp.write_text(
        json.dumps(summary, indent=2) + "\n"
    )
    write_together(writers)
    log.info(
        "%s: %s after %d epochs (%d steps, %.1f s): train %.4f, test %.4f",
        run_dir, "fitted" if fitted else "NOT fitted", summary["epochs"], summary["steps"],
        summary["seconds"], summary["train_acc"], summary["test_acc"],
    )  # fmt: skip
    return summary


def _default_generator(device: torch.device) -> torch.Generator:
    """The generator dropout draws from on `device`."""
    if device.type == "cuda":
        torch.cuda.init()
        index = torch.cuda.current_device() if device.index is None else device.index
        return torch.cuda.default_generators[index]
    return torch.default_generator


def _rng_state(gen: torch.Generator) -> dict:
    """The training device's random state only: a CPU run never touches CUDA."""
    return {
        "device_type": gen.device.type,
        "generator": gen.get_state(),  # batch order, crops, flips, colour jitter
        "default_generator": _default_generator(gen.device).get_state(),  # dropout
    }


def save_checkpoint(
    path: Path, config: RunConfig, model, optimizer, state: dict, rng: dict | None = None
) -> None:
    payload = {
        "config_hash": config.config_hash(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "state": state,
    }
    if rng is not None:
        payload["rng"] = rng
    # Serialized in memory first: torch.save on a full disk fails with an unrelated message.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_checkpoint(
    path: Path, config: RunConfig, model, optimizer, restore_rng: Callable | None = None
) -> dict | None:
    """Load the checkpoint into model and optimizer (and `restore_rng(saved_rng, state)`) and
    return the run's state, or warn in one line and return None if it cannot be used."""
    try:
        # weights_only: tensors and plain containers, never code from the file
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload["config_hash"] != config.config_hash():
            log.warning("%s: written for another config; starting from scratch", path)
            return None
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        state = payload["state"]
        if restore_rng is not None:
            restore_rng(payload["rng"], state)
    except Exception as err:  # a checkpoint is a cache: never let a bad one stop the run
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.warning("%s: cannot resume from it (%s); starting from scratch", path, reason)
        return None
    log.info("%s: resuming after epoch %d", path, state["epoch"])
    return state


def _restore_rng(saved: dict, gen, seed: int, epoch: int, path: Path) -> None:
    """The random state of the checkpoint; from another device type (whose generators hold other
    states), fresh streams seeded by (seed, epoch) instead."""
    device = gen.device
    default = _default_generator(device)
    if saved["device_type"] == device.type:
        gen.set_state(saved["generator"])
        default.set_state(saved["default_generator"])
        return
    log.warning(
        "%s: written on %s, resuming on %s with new random streams: the rest of the run differs "
        "from an uninterrupted one", path, saved["device_type"], device.type,
    )  # fmt: skip
    gen_seed, default_seed = np.random.SeedSequence([seed, epoch]).generate_state(2, np.uint64)
    gen.manual_seed(int(gen_seed))
    default.manual_seed(int(default_seed))
