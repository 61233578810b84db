"""Observers of training: code that watches a run without changing it (rules/train.smk, inside
train_run). The loop (rethink.training.loop) hands each observer what it has already computed,
at three points: every step's batch and logits, every epoch's evaluations, and the end of the
run. An observer owns its files (results such as the record are written with the run's outputs,
all or none; live logs as training goes) and its part of the checkpoint. A run without observers
pays for none.

- examples: the per-example record and critical samples (rethink.memorization), examples.h5
- tensorboard: losses, accuracies and the learning rate as TensorBoard event files
"""

from pathlib import Path

from rethink.observers.base import EpochEnd, Observer
from rethink.observers.examples import ExampleObserver

__all__ = ["EpochEnd", "Observer", "observers_for"]


def observers_for(config, run_dir: Path, batches, context, source_path) -> list[Observer]:
    """The observers a run's settings ask for (rethink.training.settings.RunConfig)."""
    found: list[Observer] = []
    if config.record_examples:
        found.append(ExampleObserver(config, run_dir, batches, context, source_path))
    if config.tensorboard:
        # imported only when asked for: tensorboard is an optional extra
        from rethink.observers.tensorboard import TensorBoardObserver

        found.append(TensorBoardObserver(run_dir, context.process.leader))
    return found
