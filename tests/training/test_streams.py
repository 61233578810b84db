"""Streamed data's random streams, global batches and evaluation shards: every example its own
stream, the same global batches whatever the number of processes, every example evaluated once
over any number of processes."""

import numpy as np
import pytest
import torch

from rethink.training.streams import GlobalBatches, Shard, epoch_order, example_generator


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


def global_batches(world: int, epoch: int, n=1000, batch=128, seed=7) -> list[list[int]]:
    """Each step's global batch: the union of every process's share, in rank order (a process
    whose share of a step is empty loads nothing for it, as StreamedBatches does)."""
    shares = [GlobalBatches(range(n), batch, seed, rank, world) for rank in range(world)]
    for share in shares:
        share.epoch = epoch
    loaded = [iter(share) for share in shares]
    steps = []
    for step in range(len(shares[0])):
        sizes = [share.share(step).stop - share.share(step).start for share in shares]
        steps.append([i for n, it in zip(sizes, loaded, strict=True) if n for _, i in next(it)])
    return steps


@pytest.mark.parametrize("world", [2, 4, 8])
def test_the_global_batches_do_not_depend_on_the_number_of_processes(world):
    for epoch in (0, 3):
        assert global_batches(world, epoch) == global_batches(1, epoch)
    one = global_batches(1, 0)
    # the paper's epoch: full batches and a last, smaller one (CIFAR-10: 390 of 128, one of 80)
    assert [len(b) for b in one] == [128] * 7 + [1000 - 7 * 128]
    assert sorted(i for b in one for i in b) == list(range(1000))  # each example once
    assert global_batches(1, 1) != one  # a new order every epoch


def test_a_last_batch_smaller_than_the_process_count_leaves_some_shares_empty():
    """The 3 examples of a last batch over 8 processes: 3 shares of one, 5 empty ones, and
    the union is still the 1-process batch."""
    assert global_batches(8, 0, n=131) == global_batches(1, 0, n=131)
    shares = [GlobalBatches(range(131), 128, 7, rank, 8) for rank in range(8)]
    last = [share.share(1).stop - share.share(1).start for share in shares]
    assert sorted(last) == [0] * 5 + [1] * 3
    # a DataLoader cannot load an empty batch: those processes' samplers yield one batch only
    assert [len(list(share)) for share in shares] == [1 + n for n in last]


def test_a_global_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(ValueError, match="does not split over 3 processes"):
        GlobalBatches(range(100), 128, 0, 0, 3)


def test_shares_of_a_global_batch_start_at_batch_norms_sub_batches():
    """44 examples in batches of 16 over 2 processes: the last batch's 12 split 6 and 6, or in
    whole sub-batches of 4 (rethink.training.batch_norm), 4 and 8."""

    def last_shares(unit):
        ranks = [GlobalBatches(range(44), 16, 0, rank, 2, unit=unit) for rank in (0, 1)]
        return [(s.start, s.stop) for s in (r.share(2) for r in ranks)]

    assert last_shares(1) == [(32, 38), (38, 44)]
    assert last_shares(4) == [(32, 36), (36, 44)]
    full = [GlobalBatches(range(44), 16, 0, rank, 2, unit=4).share(0) for rank in (0, 1)]
    assert [(s.start, s.stop) for s in full] == [(0, 8), (8, 16)]
