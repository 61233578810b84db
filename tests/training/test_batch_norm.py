"""Batch norm as TF's Inception has it: no scale, TF's decay of the running statistics, and
statistics over fixed sub-batches of the global batch, the same on 1 or 2 processes."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from rethink.data.imagenet import convert_imagenet
from rethink.models import build_model, count_parameters
from rethink.training.batch_norm import set_batch_norm, use_sub_batches
from rethink.training.optimizers import make_optimizer
from rethink.training.settings import RunConfig
from rethink.workflow.launch import train_job
from tests.fake_imagenet import write_folders


def test_tfs_decay_sets_how_far_one_batch_moves_the_running_statistics():
    bn = torch.nn.BatchNorm2d(3)
    set_batch_norm(bn, decay=0.9997)
    x = torch.randn(8, 3, 5, 5, generator=torch.Generator().manual_seed(0)) + 2
    bn.train()(x)
    # TF: running = 0.9997 * 0 + 0.0003 * the batch's mean (from a running mean of 0)
    torch.testing.assert_close(bn.running_mean, 0.0003 * x.mean(dim=(0, 2, 3)))


def test_without_scale_gamma_is_one_and_never_trains():
    model = build_model("inception-v3", (3, 75, 75), 10)
    channels = sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert channels == 17_216  # torchvision's Inception V3 has affine batch norms
    with_scale = count_parameters(model)
    set_batch_norm(model, scale=False)
    assert count_parameters(model) == with_scale - channels
    config = RunConfig("inception-v3", lr=1.0)
    optimizer = make_optimizer(config, model)
    model.train()(torch.randn(2, 3, 75, 75)).sum().backward()
    optimizer.step()
    gammas = [m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(g, torch.ones_like(g)) for g in gammas)
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not trained & {id(g) for g in gammas}


def test_sub_batches_are_normalized_and_counted_as_batch_norm_would_one_after_another():
    """A batch of 10 in sub-batches of 4: 4, 4 and 2 examples, each normalized with its own
    statistics; the running statistics as three batch norm steps in that order."""
    x = torch.randn(10, 3, 5, 5, generator=torch.Generator().manual_seed(0)) * 2 + 1
    reference = torch.nn.BatchNorm2d(3, momentum=0.3)
    torch.nn.init.uniform_(reference.weight)
    torch.nn.init.uniform_(reference.bias)
    sub = use_sub_batches(copy.deepcopy(reference), 4, 3)
    outputs = [reference.train()(chunk) for chunk in x.split(4)]
    torch.testing.assert_close(sub.train()(x), torch.cat(outputs))
    for name in ("running_mean", "running_var"):
        torch.testing.assert_close(getattr(sub, name), getattr(reference, name))
    assert sub.num_batches_tracked == 3
    sub.eval()  # evaluation: the running statistics, as any batch norm
    torch.testing.assert_close(sub(x), reference.eval()(x))
    assert list(sub.state_dict()) == list(reference.state_dict())


@pytest.fixture(scope="module")
def small_imagenet(tmp_path_factory) -> str:
    """A tiny ImageNet in the workflow's HDF5 layout: 3 classes of 40x48 JPEGs."""
    root = tmp_path_factory.mktemp("imagenet")
    write_folders(root / "copy", train_per_class=15, val_per_class=4)
    convert_imagenet(root / "copy", root / "imagenet.h5", {"seed": 0})
    return str(root / "imagenet.h5")


def inception_on_processes(dataset: str, run_dir, processes: int, group: int | None) -> tuple:
    """Inception V3 at 75x75 with TF's batch norm (no scale; decay 0.9, so that 2 epochs move
    the running statistics), 44 images in global batches of 16 (the last one 12: sub-batches
    of 4, split 4 and 8 over two processes), 2 epochs at a rate of 1e-12: the weights stay
    where they start, so that what differs is the statistics alone (from its random start,
    Inception V3 at this size amplifies float rounding in a few steps: one process on 1 or 2
    threads diverges as much). Its per-step training losses and its history."""
    config = RunConfig(
        "inception-v3", crop_size=75, batch_size=16, max_epochs=2, lr=1e-12, train_subset=44,
        eval_batch_size=16, batch_norm_scale=False, batch_norm_decay=0.9, optimizer="rmsprop",
        batch_norm_group=group, device="cpu", precision="fp32", gpus_per_node=processes,
        threads=processes, stop_when_fitted=False, loss_block_steps=1,
    )  # fmt: skip
    train_job(dataset, run_dir, config, str(run_dir.parent / f"{run_dir.name}.log"))
    steps = pd.read_csv(run_dir / "steps.csv").train_loss.to_numpy()
    return steps, pd.read_csv(run_dir / "history.csv").drop(columns="seconds")


@pytest.mark.slow
def test_sub_batch_statistics_make_one_or_two_processes_compute_the_same(small_imagenet, tmp_path):
    """With sub-batches of 4, 2 gloo processes give the losses of 1 process at every step (the
    batch statistics) and at every evaluation (the running statistics, gathered in the global
    batch's order), up to float rounding; with each process's share as its batch (plain batch
    norm) they differ from the first step."""
    one_steps, one = inception_on_processes(small_imagenet, tmp_path / "one", 1, group=4)
    two_steps, two = inception_on_processes(small_imagenet, tmp_path / "two", 2, group=4)
    np.testing.assert_allclose(two_steps, one_steps, rtol=1e-3)
    pd.testing.assert_frame_equal(one, two, check_exact=False, rtol=2e-3)
    plain_one, _ = inception_on_processes(small_imagenet, tmp_path / "plain1", 1, group=None)
    plain_two, _ = inception_on_processes(small_imagenet, tmp_path / "plain2", 2, group=None)
    assert np.abs(plain_two / plain_one - 1).max() > 0.01


def test_the_gradient_of_a_global_batch_is_the_sum_over_any_split_into_sub_batches():
    """What DDP adds up: the shares' gradients, each share normalized in its own sub-batches."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(8 * 6 * 6, 3),
    )  # fmt: skip
    whole = use_sub_batches(net, 4, 4).train()
    halves = copy.deepcopy(whole)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 3, 8, 8, generator=gen), torch.randint(0, 3, (16,), generator=gen)
    torch.nn.functional.cross_entropy(whole(x), y, reduction="sum").backward()
    for share in (slice(0, 8), slice(8, 16)):
        torch.nn.functional.cross_entropy(halves(x[share]), y[share], reduction="sum").backward()
    for a, b in zip(whole.parameters(), halves.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6)
    # plain batch norm, over the whole batch, is another function: another gradient
    plain = copy.deepcopy(whole)
    plain[1] = torch.nn.BatchNorm2d(8)
    plain.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(plain(x), y, reduction="sum").backward()
    assert not torch.allclose(plain[0].weight.grad, whole[0].weight.grad, rtol=1e-3)
