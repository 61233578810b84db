"""Training examples streamed through DataLoader workers, for runs whose data does not live on
the device: ImageNet's JPEGs, and any run spread over several processes
(rethink.training.distributed).

The random numbers of an example (crop, flip, colour) come from a generator seeded by (run
seed, epoch, example index), and the order of an epoch from one seeded by (run seed, epoch):
the sequence of global batches, and every image in them, is the same whatever the number of
processes and workers, and a run resumed at an epoch boundary continues exactly.
"""

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rethink.data.encoded import EncodedImages, is_encoded
from rethink.data.h5io import read_dataset
from rethink.training.inception_preprocessing import decode, inception_input
from rethink.training.preprocess import preprocess


def stream_seed(*keys: int) -> int:
    """A seed for the random stream named by `keys`, e.g. (run seed, epoch, example)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0])


def example_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, epoch, index))


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The random order of the `n` training examples in `epoch`."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(stream_seed(seed, epoch)))


@dataclass
class Transform:
    size: int  # network input: size x size
    crop: bool = False  # random crop (the `crop` regularizer), arrays only
    augment: bool = False  # the `augment` regularizer
    seed: int = 0


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
            x = inception_input(decode(images[i]), t.size, t.augment, gen)
        else:
            x = preprocess(images[i : i + 1], t.size, crop=t.crop, augment=t.augment, gen=gen)[0]
        return x, int(self.data.labels[i]), i


class GlobalBatches(torch.utils.data.Sampler):
    """This process's share of every global batch of an epoch, as lists of (epoch, index).

    An epoch is the floor(N / batch) full global batches of a random order; the N mod batch
    examples left over (others each epoch) are skipped, so that every process has the same
    number of examples in every step. Process r of W takes the r-th of W equal slices.
    """

    def __init__(self, indices, batch: int, seed: int, rank: int = 0, world: int = 1):
        if batch % world:
            raise ValueError(f"a global batch of {batch} does not split over {world} processes")
        self.indices, self.batch, self.seed = torch.as_tensor(indices), batch, seed
        self.rank, self.world, self.epoch = rank, world, 0

    def __len__(self) -> int:
        return len(self.indices) // self.batch

    def __iter__(self):
        order = self.indices[epoch_order(len(self.indices), self.seed, self.epoch)]
        share = self.batch // self.world
        for b in range(len(self)):
            start = b * self.batch + self.rank * share
            yield [(self.epoch, int(i)) for i in order[start : start + share]]


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


def loader(examples: Examples, sampler, workers: int, device: torch.device) -> DataLoader:
    return DataLoader(
        examples,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None,
    )
