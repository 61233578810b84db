"""The per-example record (`record_examples`) and critical samples (`critical_examples`) as an
observer: every epoch, each training example's prediction, loss and margin from the evaluation
pass the loop makes anyway, and whether its minibatch classified it correctly before the update;
at epochs 1, 2, 4, ... and the last, which of a fixed set of test and training images are
critical. Written to examples.h5 (rethink.memorization.record) with each example's assigned
label, original label and corrupted flag."""

from pathlib import Path

import numpy as np
import torch

from rethink.memorization import EXAMPLES_FILE
from rethink.memorization.critical import Lass, critical_samples, is_probe_epoch
from rethink.memorization.record import ExampleRecord
from rethink.observers.base import EpochEnd, Observer
from rethink.training.preprocess import preprocess
from rethink.training.seeds import Stream, generator
from rethink.training.streams import open_split


class ExampleObserver(Observer):
    name = "examples"
    wants_examples = True

    def __init__(self, config, run_dir: Path, batches, context, source_path):
        self.config, self.run_dir, self.batches, self.context = config, run_dir, batches, context
        self.labels = example_labels(batches, source_path)
        self.critical_sets = (
            critical_set_indices(self.labels[2], batches.sizes["test"], config.critical_examples)
            if config.critical_examples else None
        )  # fmt: skip
        self.hits = torch.zeros(batches.sizes["train"], dtype=torch.uint8, device=context.device)
        self.record = ExampleRecord()

    def resume(self, state) -> None:
        self.record = ExampleRecord() if state is None else ExampleRecord.from_state(state)

    def state(self):
        return self.record.state()

    def step(self, batch, logits: torch.Tensor) -> None:
        self.hits[batch.index] = (logits.detach().argmax(dim=1) == batch.y).to(torch.uint8)

    def epoch_end(self, end: EpochEnd) -> None:
        presented = self.context.sum(self.hits.clone()) > 0  # each process saw its share
        self.hits.zero_()  # the next epoch's shares are others
        order = torch.argsort(end.train.index)
        self.record.add_epoch(
            end.train.predictions[order], end.train.losses[order], end.train.margins[order],
            presented,
        )  # fmt: skip
        if self.critical_sets is not None and is_probe_epoch(end.epoch):
            self._probe(end)

    def finish(self, end: EpochEnd) -> dict:
        if self.critical_sets is not None and self.record.critical_epochs[-1:] != [end.epoch]:
            self._probe(end)  # and at the last epoch
        if not self.context.process.leader:
            return {}

        def write(tmp):
            self.record.write(tmp, *self.labels, self.critical_sets)

        return {self.run_dir / EXAMPLES_FILE: write}

    def _probe(self, end: EpochEnd) -> None:
        """CSR of the fixed sets at this epoch, with noise seeded by (seed, epoch); both sets
        searched as one batch, by the leader (the record is its)."""
        if not self.context.process.leader:
            return
        config, sets = self.config, self.critical_sets
        images = torch.cat([
            self.batches.raw_images("test", sets["test"]),
            self.batches.raw_images("train", sets["train"]),
        ])  # fmt: skip
        gen = generator(config.seed, end.epoch, Stream.CRITICAL, device=self.context.device)
        with self.context.autocast():
            found = critical_samples(
                end.model, images, Lass.of(config), lambda x: preprocess(x, config.crop_size),
                gen, config.eval_batch_size,
            )  # fmt: skip
        n_test = len(sets["test"])
        self.record.add_critical(end.epoch, found[:n_test], found[n_test:])


def example_labels(batches, source_path) -> tuple:
    """Each training example's assigned label (the variant's, as loaded), original label (the
    source dataset's) and corrupted flag. Where the variant's classes are not the dataset's
    (`rademacher{k}`: random signs), every label is replaced, so every example is corrupted."""
    if source_path is None:
        raise ValueError("record_examples needs source_path, the variant's source dataset")
    source = open_split(source_path, "train")
    assigned = batches.train_labels()
    original = np.asarray(source.labels)[batches.train_file_positions]
    if batches.classes != source.classes:
        return assigned, original, np.ones(len(assigned), bool)
    return assigned, original, assigned != original


def critical_set_indices(corrupted: np.ndarray, n_test: int, k: int) -> dict:
    """The fixed images whose CSR a run measures: the first `k` test images, and as many
    training images, half the first clean and half the first corrupted ones where both exist,
    else the first ones."""
    clean, noisy = np.flatnonzero(~corrupted), np.flatnonzero(corrupted)
    if len(clean) and len(noisy):
        train = np.concatenate([clean[: k - k // 2], noisy[: k // 2]])
    else:
        train = np.arange(min(k, len(corrupted)))
    return {"test": np.arange(min(k, n_test)), "train": np.sort(train)}
