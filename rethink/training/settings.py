"""The settings of one training run: the study's `training` values, with the model's overrides
(rethink.config.run_config). Imports no torch, so that planning a study does not."""

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from rethink.data.datasets import DATASETS
from rethink.models import MODELS
from rethink.training.regularizers import Regularization, regularization


@dataclass
class RunConfig:
    model: str  # a key of rethink.models.MODELS
    regularizer: str = "none"  # e.g. none, wd, crop+wd (rethink.training.regularizers)
    seed: int = 0  # model initialization, batch order, augmentation, dropout
    lr: float | None = None  # initial learning rate; None: the model's value from the paper
    # The batch `lr` is given for: the rate scales linearly to batch_size (Goyal et al. 2017).
    # None: `lr` is batch_size's own.
    lr_batch: int | None = None
    # The rate is multiplied by lr_decay after every lr_decay_steps steps: the paper's 0.95 per
    # CIFAR-10 epoch of 391 steps, whatever the dataset's size (lr_at); or, where
    # lr_decay_epochs is set, after every int(training images / batch_size x lr_decay_epochs)
    # steps, TF's decay_steps (2 epochs in its Inception recipe).
    lr_decay: float = 0.95
    lr_decay_steps: int = 391
    lr_decay_epochs: float | None = None
    # sgd: SGD with momentum (torch's); rmsprop: TF's RMSProp with momentum, epsilon inside
    # the square root (rethink.training.optimizers).
    optimizer: str = "sgd"
    momentum: float = 0.9
    rmsprop_decay: float = 0.9
    rmsprop_epsilon: float = 1.0
    # The parameters weight decay applies to: all, or weights (of convolutions and linear
    # layers only: no bias, no batch norm, as TF-slim's Inception).
    weight_decay_on: str = "all"
    label_smoothing: float = 0.0  # of the training loss, TF's: targets (1 - s) y + s / classes
    aux_loss_weight: float = 0.0  # the auxiliary head's loss weight (inception-v3: TF's 0.4)
    # Batch norm: with its scale (gamma) or, false, without (TF's Inception); its running
    # statistics' decay, TF's convention (torch's momentum is 1 - decay); None: the model's own.
    batch_norm_scale: bool = True
    batch_norm_decay: float | None = None
    # Batch norm statistics over fixed sub-batches of this many examples of the global batch
    # (TF's asynchronous workers: 32 each), the same whatever the number of processes; None:
    # over each process's share (rethink.training.batch_norm).
    batch_norm_group: int | None = None
    # Also evaluate an exponential moving average of the weights with this decay (TF's
    # Inception: 0.9999), recorded beside the raw weights' accuracies; None: none.
    average_decay: float | None = None
    batch_size: int = 128
    max_epochs: int = 100  # a run that has not fitted by then is recorded as not fitted
    # Stop at the first epoch that fits the training set (the paper's protocol); false: train
    # all max_epochs, a fixed budget (Toneva et al. 2019's regime).
    stop_when_fitted: bool = True
    weight_decay: float = 5e-4  # L2 coefficient, used under the `wd` regularizer only
    dropout: float = 0.5  # dropout rate, used under the `dropout` regularizer only
    crop_size: int = 28  # pixels; the paper crops CIFAR-10's 32x32 images to 28x28
    train_subset: int | None = None  # train on the first N training images only (None: all)
    test_subset: int | None = None  # measure test accuracy on the first N test images only
    eval_batch_size: int = 1000  # images per forward pass when measuring accuracy
    loss_block_steps: int = 10  # steps.csv: mean training loss over blocks of this many steps
    checkpoint_every: int = 5  # epochs between checkpoints
    keep_checkpoint: bool = False  # keep checkpoint.pt after the run completes
    device: str = "auto"  # auto (CUDA if present), cpu, cuda, cuda:1, ...
    threads: int = 1  # torch CPU threads (Snakemake passes the job's `threads`)
    deterministic: bool = True  # on CUDA: deterministic kernels, no cuDNN autotuner (slower)
    precision: str = "auto"  # fp32, tf32 (CUDA), bf16, or auto (rethink.training.precision)
    compile: bool = (
        False  # torch.compile the model; CUDA graphs on CUDA (rethink.training.compiled)
    )
    record_examples: bool = False  # examples.h5: every example's fate at every epoch
    # Critical samples (rethink.memorization.critical) of this many test and as many training
    # images, at epochs 1, 2, 4, ... and the last; 0: none. Needs record_examples (they go in
    # its file).
    critical_examples: int = 0
    critical_radius: float = 0.3  # LASS on the 0-255 pixel scale: box half-width r,
    critical_step: float = 0.25  # signed-gradient step alpha,
    critical_noise: float = 0.2  # noise standard deviation beta,
    critical_iterations: int = 100  # iteration cap,
    critical_stop_below: int = 20  # and stop (Arpit et al. 2017's code; 0: run to the cap)
    # Streamed runs (rethink.training.batches): ImageNet, or any run over several processes.
    nodes: int = 1  # machines, one torchrun each (several: srun + torchrun under SLURM)
    gpus_per_node: int = 1  # processes per machine: one per GPU (gloo processes on a CPU)
    loader_workers: int = 0  # DataLoader worker processes per training process
    # JPEG datasets: decoded and augmented by the loader workers (pillow), or on the training
    # GPU (nvjpeg: rethink.training.nvjpeg)
    jpeg_decoder: str = "pillow"
    train_eval_images: int | None = None  # training accuracy on a fixed random subset this big
    tensorboard: bool = False  # event files in the run folder (the study's logging.tensorboard)

    # Fields that change how a run executes but not what it computes.
    RUNTIME_ONLY = (
        "checkpoint_every", "keep_checkpoint", "device", "threads", "deterministic", "nodes",
        "gpus_per_node", "loader_workers", "tensorboard",
    )  # fmt: skip

    def __post_init__(self):
        if self.lr is None:
            self.lr = MODELS[self.model].lr
        if self.critical_examples and not self.record_examples:
            raise ValueError("critical_examples needs record_examples: the CSR goes in its file")

    def decay_steps(self, train_images: int) -> int:
        """Steps between two decays of the learning rate, for a run on `train_images`."""
        if self.lr_decay_epochs is None:
            return self.lr_decay_steps
        return max(1, int(train_images / self.batch_size * self.lr_decay_epochs))

    def lr_at(self, step: int, train_images: int) -> float:
        """The learning rate of the step numbered `step` (from 0) of a run on `train_images`:
        a staircase, as the paper's decay after each epoch, so that on CIFAR-10 it is exactly
        the paper's; scaled from `lr_batch` to the batch."""
        scale = 1.0 if self.lr_batch is None else self.batch_size / self.lr_batch
        return scale * self.lr * self.lr_decay ** (step // self.decay_steps(train_images))

    @property
    def regularization(self) -> Regularization:
        """The regularizer name parsed, strengths resolved (rethink.training.regularizers)."""
        return regularization(self.regularizer, self.weight_decay, self.dropout)

    @property
    def processes(self) -> int:
        """Processes the run trains on (started by rethink.workflow.launch when more than one)."""
        return self.nodes * self.gpus_per_node

    def determining_fields(self) -> dict:
        """Everything that determines the run's numbers (Snakemake reruns a run when it changes).
        Fields added for ImageNet are left out at their defaults: they changed no earlier run's
        config hash."""
        fields = dataclasses.asdict(self)
        for name in ADDED_FOR_IMAGENET:
            if fields[name] == RunConfig.__dataclass_fields__[name].default:
                del fields[name]
        return {k: v for k, v in fields.items() if k not in self.RUNTIME_ONLY}

    def config_hash(self) -> str:
        return hashlib.sha256(
            json.dumps(self.determining_fields(), sort_keys=True).encode()
        ).hexdigest()[:16]


ADDED_FOR_IMAGENET = (
    "train_eval_images", "lr_batch", "lr_decay_epochs", "optimizer", "rmsprop_decay",
    "rmsprop_epsilon", "weight_decay_on", "label_smoothing", "aux_loss_weight",
    "batch_norm_scale", "batch_norm_decay", "batch_norm_group", "average_decay", "jpeg_decoder",
)  # fmt: skip


def is_streamed(config: RunConfig, dataset: str) -> bool:
    """Whether this run of `dataset` streams its batches through DataLoader workers rather
    than holding them on the device (rethink.training.batches)."""
    return config.processes > 1 or DATASETS[dataset].encoded
