"""How a network memorizes, example by example (Arpit et al. 2017; Toneva et al. 2019).

A run with `record_examples` keeps, for every epoch and every training example, the predicted
class, loss and margin of the eval-mode pass that measures training accuracy (no extra pass), and
whether the example's minibatch classified it correctly before the update (Toneva's
presentations). `examples.h5` in the run directory holds them with each example's assigned label,
original label and corrupted flag; rethink.memorization.tables derives the measures.
"""

import os
from dataclasses import dataclass, field, fields

import h5py
import numpy as np
import torch


@dataclass
class ExampleRecord:
    """The per-epoch arrays of one run, compact and on the CPU (they travel in checkpoints)."""

    predictions: list[torch.Tensor] = field(default_factory=list)  # class, int16
    losses: list[torch.Tensor] = field(default_factory=list)  # cross-entropy, float16
    margins: list[torch.Tensor] = field(default_factory=list)  # assigned-class logit minus
    # the largest other logit, float16: > 0 exactly when the example is fitted
    presented_correct: list[torch.Tensor] = field(default_factory=list)  # bool
    # Critical samples (rethink.memorization.critical), at the epochs measured: whether each
    # image of the fixed test and training sets is critical.
    critical_epochs: list[int] = field(default_factory=list)
    critical_test: list[torch.Tensor] = field(default_factory=list)
    critical_train: list[torch.Tensor] = field(default_factory=list)

    def add_epoch(self, predictions, losses, margins, presented_correct) -> None:
        self.predictions.append(predictions.to("cpu", torch.int16))
        self.losses.append(losses.to("cpu", torch.float16))
        self.margins.append(margins.to("cpu", torch.float16))
        self.presented_correct.append(presented_correct.to("cpu", torch.bool, copy=True))

    def add_critical(self, epoch: int, test: torch.Tensor, train: torch.Tensor) -> None:
        self.critical_epochs.append(epoch)
        self.critical_test.append(test.to("cpu", torch.bool, copy=True))
        self.critical_train.append(train.to("cpu", torch.bool, copy=True))

    def state(self) -> dict:
        """The record as plain lists, for a checkpoint; they grow with the record."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict) -> "ExampleRecord":
        """The record whose lists are those of `state`: adding to it adds to the state."""
        return cls(**{f.name: state[f.name] for f in fields(cls)})

    def write(
        self, path: str | os.PathLike, assigned, original, corrupted, critical_sets=None
    ) -> None:
        """Write the record to `path` (a new file): epoch x example arrays under /epochs, per
        example /assigned_label, /original_label, /corrupted, and with `critical_sets`
        ({"test": indices, "train": indices}) /critical/{epochs,test,train,*_index}."""
        with h5py.File(path, "w", libver="v110") as f:
            for name in _ARRAYS:
                array = torch.stack(getattr(self, name)).numpy()
                if name == "predictions" and array.max(initial=0) < 256:
                    array = array.astype(np.uint8)  # 1 byte a prediction up to 256 classes
                f.create_dataset(f"epochs/{name}", data=array, compression="gzip", shuffle=True)
            f.create_dataset("assigned_label", data=np.asarray(assigned, np.int64))
            f.create_dataset("original_label", data=np.asarray(original, np.int64))
            f.create_dataset("corrupted", data=np.asarray(corrupted, bool))
            if critical_sets is not None:
                f.create_dataset("critical/epochs", data=np.asarray(self.critical_epochs, np.int64))
                for name, index in critical_sets.items():
                    found = torch.stack(getattr(self, f"critical_{name}")).numpy()
                    f.create_dataset(f"critical/{name}", data=found)
                    f.create_dataset(f"critical/{name}_index", data=np.asarray(index, np.int64))


_ARRAYS = ("predictions", "losses", "margins", "presented_correct")


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Logit of each example's label minus its largest other logit."""
    own = logits.gather(1, labels[:, None])[:, 0]
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return own - others
