"""Every random stream of a run, seeded by (run seed, epoch, stream[, key]).

A stream is named by what it draws, so no two share numbers, and it starts afresh every epoch:
a run resumed from a checkpoint at an epoch boundary draws exactly what it would have drawn,
and a checkpoint holds no random state.
"""

from enum import IntEnum

import numpy as np
import torch


class Stream(IntEnum):
    INIT = 0  # the model's initial weights (epoch 0)
    ORDER = 1  # the epoch's order of the training examples
    AUGMENT = 2  # crops, flips, colour: per epoch for a batch on the device, per example streamed
    DROPOUT = 3  # dropout masks, keyed by the process's rank
    CRITICAL = 4  # the noise of the critical-sample search (rethink.memorization.critical)


def stream_seed(seed: int, epoch: int, stream: Stream, *keys: int) -> int:
    """The 64-bit seed of `stream` in `epoch` of the run seeded by `seed`."""
    entropy = [seed, epoch, int(stream), *keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def generator(
    seed: int, epoch: int, stream: Stream, *keys: int, device: torch.device | str = "cpu"
) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(stream_seed(seed, epoch, stream, *keys))
