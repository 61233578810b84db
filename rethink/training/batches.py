"""Where a run's batches come from: the one part of training, with the process group, that
differs between runs (rethink.training.loop reads either source the same way).

- InMemoryBatches: the whole variant on the device as tensors; a batch is an index lookup and
  augmentation is batched on the device, with no per-example Python. Runs on one process of a
  dataset stored as arrays train this way.
- StreamedBatches: examples read and augmented by DataLoader workers (rethink.training.streams),
  this process's share of each global batch: datasets stored as JPEG files (ImageNet), and every
  run over several processes.

Both cut the same random order of the training examples (rethink.training.seeds) into the same
batches, the last one smaller where the batch size does not divide the training set; both index
examples by their position among the run's training (or test) examples.
"""

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from rethink.data.encoded import EncodedImages, is_encoded
from rethink.data.h5io import read_dataset
from rethink.training.context import Context
from rethink.training.preprocess import preprocess
from rethink.training.seeds import Stream, generator
from rethink.training.settings import RunConfig
from rethink.training.streams import (
    Examples,
    GlobalBatches,
    Shard,
    Transform,
    epoch_order,
    loader,
    open_split,
)

SUBSET_SEED = 0  # the fixed random subsets of encoded datasets are the same in every run


@dataclass
class Batch:
    x: torch.Tensor  # network inputs on the device, in the model's memory format
    y: torch.Tensor  # labels
    index: torch.Tensor  # each example's position in its split (the run's subset of it)
    size: int  # examples in this step over every process: the mean loss's denominator


def memory_format(model: torch.nn.Module) -> torch.memory_format:
    """channels_last for convolutional models, which trains them 20-30% faster on CPU (oneDNN)
    and GPU (cuDNN)."""
    convolutional = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    return torch.channels_last if convolutional else torch.contiguous_format


def subset(n: int, size: int | None, shuffled_file: bool) -> np.ndarray:
    """`size` of the `n` examples: the first ones of a file stored in random order (variants
    are), else a fixed random choice (ImageNet is stored class by class)."""
    if size is None or size >= n:
        return np.arange(n)
    if shuffled_file:
        return np.arange(size)
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(n, size, replace=False))


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


class InMemoryBatches:
    def __init__(self, data: DeviceData, config: RunConfig):
        self.config, self.device, self.data = config, data.train_labels.device, data
        n_train = len(self.data.train_labels)
        self.eval_positions = subset(n_train, config.train_eval_images, shuffled_file=False)
        self.sizes = {
            "train": n_train,
            "train_eval": len(self.eval_positions),
            "test": len(self.data.test_labels),
        }  # fmt: skip
        self.classes = self.data.classes
        self.input_shape = tuple(self.data.train_inputs.shape[1:])
        self.train_file_positions = np.arange(n_train)  # in the variant file

    def use_memory_format(self, memory_format: torch.memory_format) -> None:
        self.data = self.data.in_memory_format(memory_format)

    def train(self, epoch: int) -> Iterator[Batch]:
        data, config = self.data, self.config
        regularization = config.regularization
        gen = generator(config.seed, epoch, Stream.AUGMENT, device=self.device)
        order = epoch_order(len(data.train_labels), config.seed, epoch).to(self.device)
        for index in order.split(config.batch_size):
            if regularization.randomizes_inputs:
                x = preprocess(
                    data.train_images[index], config.crop_size, crop=regularization.crop,
                    augment=regularization.augment, gen=gen,
                )  # fmt: skip
            else:
                x = data.train_inputs[index]
            yield Batch(x, data.train_labels[index], index, len(index))

    def evaluation(self, split: str) -> Iterator[Batch]:
        """The split's examples (train, train_eval or test) in order, for an eval pass."""
        data = self.data
        inputs, labels = (
            (data.test_inputs, data.test_labels) if split == "test"
            else (data.train_inputs, data.train_labels)
        )  # fmt: skip
        positions = torch.arange(len(labels), device=self.device)
        if split == "train_eval" and self.sizes["train_eval"] < self.sizes["train"]:
            positions = torch.as_tensor(self.eval_positions, device=self.device)
        for index in positions.split(self.config.eval_batch_size):
            yield Batch(inputs[index], labels[index], index, len(index))

    def raw_images(self, split: str, positions) -> torch.Tensor:
        """Stored images (0-255, C x H x W) of the split's examples at `positions`."""
        images = self.data.test_images if split == "test" else self.data.train_images
        return images[torch.as_tensor(positions, device=self.device)]

    def train_labels(self) -> np.ndarray:
        return self.data.train_labels.cpu().numpy()


class StreamedBatches:
    def __init__(self, path: str | os.PathLike, config: RunConfig, context: Context):
        self.config, self.device = config, context.device
        self.format = torch.contiguous_format
        regularization = config.regularization
        self.splits = {split: open_split(path, split) for split in ("train", "test")}
        train_split, test_split = self.splits["train"], self.splits["test"]
        decoder = config.jpeg_decoder
        transform = Transform(
            config.crop_size, regularization.crop, regularization.augment, config.seed, decoder
        )
        train = Examples(train_split, transform)
        plain = Transform(config.crop_size, decoder=decoder)
        encoded = isinstance(train_split.images, EncodedImages)
        self.decode_on_device = decoder == "nvjpeg" and encoded
        shuffled = not isinstance(train_split.images, EncodedImages)
        self.file_positions = {
            "train": subset(len(train), config.train_subset, shuffled),
            "test": subset(len(test_split.labels), config.test_subset, shuffled),
        }  # fmt: skip
        self.train_file_positions = self.file_positions["train"]
        # a batch's file indices back to positions, on the CPU where the loader yields them
        self.sorted_positions = {k: torch.as_tensor(v) for k, v in self.file_positions.items()}
        self.eval_positions = subset(
            len(self.train_file_positions), config.train_eval_images, False
        )
        place = (context.process.rank, context.process.world)
        workers = config.loader_workers
        self.global_batches = GlobalBatches(
            self.train_file_positions, config.batch_size, config.seed, *place,
            unit=config.batch_norm_group or 1,
        )  # fmt: skip
        self.train_loader = loader(train, self.global_batches, workers, self.device)

        train_eval = Examples(train_split, plain)

        def eval_loader(examples, file_positions):
            shard = Shard(file_positions, config.eval_batch_size, *place)
            return loader(examples, shard, workers, self.device)

        self.eval_loaders = {
            "train": eval_loader(train_eval, self.train_file_positions),
            "train_eval": eval_loader(train_eval, self.train_file_positions[self.eval_positions]),
            "test": eval_loader(Examples(test_split, plain), self.file_positions["test"]),
        }  # fmt: skip
        self.sizes = {
            "train": len(self.train_file_positions),
            "train_eval": len(self.eval_positions),
            "test": len(self.file_positions["test"]),
        }  # fmt: skip
        self.classes = train_split.classes
        side = config.crop_size
        shape = (3, side, side) if self.decode_on_device else train_eval[(0, 0)][0].shape
        self.input_shape = tuple(shape)

    def use_memory_format(self, memory_format: torch.memory_format) -> None:
        self.format = memory_format

    def _batch(self, loaded, split: str, size: int | None = None) -> Batch:
        x, y, file_index = loaded
        if self.decode_on_device:
            from rethink.training.nvjpeg import decode_batch  # torchvision.io: only here

            x = decode_batch(*x, self.config.crop_size, self.device)
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.format)
        index = torch.searchsorted(self.sorted_positions[split], file_index)
        y = y.to(self.device, non_blocking=True)
        return Batch(x, y, index.to(self.device), len(y) if size is None else size)

    def train(self, epoch: int) -> Iterator[Batch]:
        """This process's share of each global batch; an empty one where the last batch has
        fewer examples than there are processes (every process takes part in every step)."""
        batches = self.global_batches
        batches.epoch = epoch
        loaded = iter(self.train_loader)
        for step in range(len(batches)):
            share = batches.share(step)
            if share.stop > share.start:
                yield self._batch(next(loaded), "train", batches.global_size(step))
            else:
                empty = torch.empty((0, *self.input_shape), device=self.device)
                none = torch.empty(0, dtype=torch.int64, device=self.device)
                yield Batch(empty, none, none, batches.global_size(step))

    def evaluation(self, split: str) -> Iterator[Batch]:
        """This process's shard of the split's examples (train, train_eval or test)."""
        positions = "test" if split == "test" else "train"
        return (self._batch(loaded, positions) for loaded in self.eval_loaders[split])

    def raw_images(self, split: str, positions) -> torch.Tensor:
        images = self.splits["test" if split == "test" else "train"].images
        if isinstance(images, EncodedImages):
            raise ValueError("critical samples need a dataset stored as arrays, not JPEG files")
        file_positions = self.file_positions["test" if split == "test" else "train"]
        return images[torch.as_tensor(file_positions[np.asarray(positions)])].to(self.device)

    def train_labels(self) -> np.ndarray:
        return np.asarray(self.splits["train"].labels)[self.train_file_positions]


def open_batches(path, config: RunConfig, context: Context):
    """The run's batch source: streamed for a JPEG dataset or several processes, else in
    memory."""
    if is_encoded(path) or context.process.world > 1:
        return StreamedBatches(path, config, context)
    return InMemoryBatches(load_data(path, config, context.device), config)
