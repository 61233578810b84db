"""Streamed data's random streams and evaluation shards: every example its own stream, every
example evaluated once over any number of processes."""

import numpy as np
import pytest
import torch

from rethink.training.streams import Shard, epoch_order, example_generator


def test_every_example_and_epoch_has_a_stream_of_its_own():
    draws = {
        (epoch, index): torch.rand(4, generator=example_generator(7, epoch, index))
        for epoch in (0, 1) for index in (0, 1, 2)
    }  # fmt: skip
    values = [tuple(d.tolist()) for d in draws.values()]
    assert len(set(values)) == len(values)
    again = torch.rand(4, generator=example_generator(7, 1, 2))
    assert torch.equal(again, draws[1, 2])
    assert not torch.equal(torch.rand(4, generator=example_generator(8, 1, 2)), draws[1, 2])


def test_the_epoch_order_is_a_seeded_permutation():
    order = epoch_order(50, seed=3, epoch=2)
    assert sorted(order.tolist()) == list(range(50))
    assert torch.equal(order, epoch_order(50, seed=3, epoch=2))
    assert not torch.equal(order, epoch_order(50, seed=3, epoch=3))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_the_shards_evaluate_every_example_once_in_batches(world):
    indices = np.arange(10, 33)
    shards = [Shard(indices, batch=4, rank=rank, world=world) for rank in range(world)]
    seen = [i for shard in shards for batch in shard for _, i in batch]
    assert seen == indices.tolist()  # contiguous shares, in order, none twice
    for shard in shards:
        assert all(len(batch) <= 4 for batch in shard) and len(shard) == len(list(shard))
    assert [i for batch in Shard(indices, batch=4) for _, i in batch] == indices.tolist()
