"""The interface between the training loop and its observers (rethink.observers)."""

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class EpochEnd:
    """What the loop knows after an epoch: its number (1-based), step count and learning rate,
    the evaluations of the training set (rethink.training.evaluation.Evaluation, per example
    where an observer asks) and of the test set, and the plain model."""

    epoch: int
    step: int
    lr: float
    train: object
    test: object
    model: torch.nn.Module


class Observer:
    """The interface, doing nothing; subclasses override what they use."""

    name = "observer"  # the key of its state in a checkpoint
    wants_examples = False  # per-example evaluation of the whole training set every epoch

    def resume(self, state) -> None:
        """Continue from `state` (what `state()` returned when the checkpoint was written), or
        start afresh with None."""

    def state(self):
        """What a checkpoint keeps of this observer (plain containers and tensors), or None."""
        return None

    def step(self, batch, logits: torch.Tensor) -> None:
        """After a training step's forward pass: the batch (rethink.training.batches.Batch) and
        its logits, before the update."""

    def epoch_end(self, end: EpochEnd) -> None:
        pass

    def finish(self, end: EpochEnd) -> dict[Path, object]:
        """After the last epoch: this process's files, as path -> write(temporary path)."""
        return {}

    def close(self) -> None:
        """Release what the observer holds open, whether the run finished or failed."""
