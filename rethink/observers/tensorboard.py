"""TensorBoard logging (`logging.tensorboard`): per epoch, the training and test losses and
accuracies (top-5 too, where a dataset has more than 5 classes) and the learning rate, as event
files in the run folder's tensorboard/, so that `tensorboard --logdir results/runs` shows every
run. A resumed run drops the events written after its checkpoint; a run that starts from scratch
drops them all. The leader process writes; needs the `tensorboard` package (`pip install -e
'.[tensorboard]'`), which the config check asks for before any job.
"""

import math
import shutil
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from rethink.observers.base import EpochEnd, Observer

FOLDER = "tensorboard"  # in the run folder


class TensorBoardObserver(Observer):
    name = "tensorboard"

    def __init__(self, run_dir: Path, leader: bool):
        self.folder, self.leader = Path(run_dir) / FOLDER, leader
        self.writer: SummaryWriter | None = None
        self.epoch = 0

    def resume(self, state) -> None:
        if not self.leader:
            return
        self.epoch = 0 if state is None else state["epoch"]
        if state is None:
            shutil.rmtree(self.folder, ignore_errors=True)  # a killed attempt's events
        # purge_step: events of later epochs (written before a kill) are dropped on reading
        self.writer = SummaryWriter(self.folder, purge_step=self.epoch + 1)

    def state(self):
        return {"epoch": self.epoch}

    def epoch_end(self, end: EpochEnd) -> None:
        self.epoch = end.epoch
        if self.writer is None:
            return
        scalars = {
            "loss/train": end.train.loss, "loss/test": end.test.loss,
            "accuracy/train": end.train.accuracy, "accuracy/test": end.test.accuracy,
            "top5/train": end.train.top5_accuracy, "top5/test": end.test.top5_accuracy,
            "lr": end.lr,
        }  # fmt: skip
        for tag, value in scalars.items():
            if not math.isnan(value):
                self.writer.add_scalar(tag, value, end.epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
