"""Training examples streamed through DataLoader workers, for runs whose data does not live on
the device: ImageNet's JPEGs, and any run spread over several processes
(rethink.training.batches.StreamedBatches).

The random numbers of an example (crop, flip, colour) come from a generator seeded by (run
seed, epoch, example index), and the order of an epoch from one seeded by (run seed, epoch)
(rethink.training.seeds): the sequence of global batches, and every image in them, is the same
whatever the number of processes and workers, and a run resumed at an epoch boundary continues
exactly.
"""

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from rethink.data.encoded import EncodedImages, is_encoded
from rethink.data.h5io import read_dataset
from rethink.training.preprocess import preprocess
from rethink.training.seeds import Stream, generator


def example_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The augmentation stream of one training example in one epoch."""
    return generator(seed, epoch, Stream.AUGMENT, index)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The random order of the `n` training examples in `epoch`, on the CPU."""
    return torch.randperm(n, generator=generator(seed, epoch, Stream.ORDER))


@dataclass
class Transform:
    size: int  # network input: size x size
    crop: bool = False  # random crop (the `crop` regularizer), arrays only
    augment: bool = False  # the `augment` regularizer
    seed: int = 0
    # JPEGs: decoded in the worker (pillow), or only read there and decoded on the GPU
    # (nvjpeg: rethink.training.nvjpeg)
    decoder: str = "pillow"


@dataclass
class SplitData:
    """One split of a dataset file as streams read it: JPEG bytes read on demand, or the
    images as a C x H x W tensor view of the arrays read once (workers forked later share
    the pages)."""

    images: EncodedImages | torch.Tensor
    labels: np.ndarray
    classes: list[str]


def open_split(path: str | os.PathLike, split: str) -> SplitData:
    if is_encoded(path):
        images = EncodedImages(path, split)
        return SplitData(images, images.labels, images.classes)
    dataset = read_dataset(path)
    data = dataset.split(split)
    return SplitData(torch.from_numpy(data.images).permute(0, 3, 1, 2), data.labels,
                     dataset.classes)  # fmt: skip


class Examples(Dataset):
    """A split with its transform; item (epoch, i) is (network input, label, i)."""

    def __init__(self, data: SplitData, transform: Transform):
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data.labels)

    def __getitem__(self, item: tuple[int, int]):
        epoch, i = item
        t, images = self.transform, self.data.images
        randomized = t.augment or t.crop
        gen = example_generator(t.seed, epoch, i) if randomized else None
        if isinstance(images, EncodedImages):
            # Imported here: only datasets stored as JPEG files need OpenCV.
            from rethink.training.inception_preprocessing import draws_of, inception_input

            if t.decoder == "nvjpeg":  # bytes and draws; decoded on the GPU (collate, below)
                data = images[i]
                draws = draws_of(data, t.size, t.augment, gen).as_tensor()
                x = (torch.frombuffer(bytearray(data), dtype=torch.uint8), draws)
            else:
                x = inception_input(images[i], t.size, t.augment, gen)
        else:
            x = preprocess(images[i : i + 1], t.size, crop=t.crop, augment=t.augment, gen=gen)[0]
        return x, int(self.data.labels[i]), i


class GlobalBatches(torch.utils.data.Sampler):
    """This process's share of every global batch of an epoch, as lists of (epoch, index).

    An epoch is a random order of the N examples cut into batches of `batch`, the last one
    smaller where `batch` does not divide N (the paper's epoch of CIFAR-10: 391 steps of 128).
    Process r of W takes the r-th of W contiguous slices of each batch, in whole units of
    `unit` examples (batch norm's sub-batches; the last unit may be smaller): the slices of a
    full batch are equal (the config checks that W units divide `batch`), those of the last
    may differ by a unit and be empty (rethink.training.loop weighs each process's loss by its
    share).
    """

    def __init__(self, indices, batch: int, seed: int, rank=0, world=1, unit=1):
        if batch % world:
            raise ValueError(f"a global batch of {batch} does not split over {world} processes")
        self.indices, self.batch, self.seed = torch.as_tensor(indices), batch, seed
        self.rank, self.world, self.unit, self.epoch = rank, world, unit, 0

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch)

    def global_size(self, step: int) -> int:
        """Examples in the epoch's `step`-th global batch, over every process."""
        return min(self.batch, len(self.indices) - step * self.batch)

    def share(self, step: int) -> slice:
        """This process's slice of the epoch's order in `step`."""
        start, size = step * self.batch, self.global_size(step)
        units = -(-size // self.unit)

        def boundary(rank: int) -> int:
            return start + min(size, self.unit * (rank * units // self.world))

        return slice(boundary(self.rank), boundary(self.rank + 1))

    def __iter__(self):
        """The non-empty shares (a DataLoader cannot load an empty batch)."""
        order = self.indices[epoch_order(len(self.indices), self.seed, self.epoch)]
        for step in range(len(self)):
            if share := [(self.epoch, int(i)) for i in order[self.share(step)]]:
                yield share


class Shard(torch.utils.data.Sampler):
    """Fixed examples for evaluation, this process's contiguous share, in batches."""

    def __init__(self, indices, batch: int, rank: int = 0, world: int = 1):
        shard = np.array_split(np.asarray(indices), world)[rank]
        self.batches = [
            [(0, int(i)) for i in shard[start : start + batch]]
            for start in range(0, len(shard), batch)
        ]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def collate(items: list) -> tuple:
    """A batch of examples; JPEGs left to decode on the GPU as (list of bytes, draws)."""
    if not isinstance(items[0][0], tuple):
        return default_collate(items)
    encoded, labels, index = zip(*items, strict=True)
    data, draws = zip(*encoded, strict=True)
    return (list(data), torch.stack(draws)), torch.tensor(labels), torch.tensor(index)


def loader(examples: Examples, sampler, workers: int, device: torch.device) -> DataLoader:
    return DataLoader(
        examples,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None,
    )
