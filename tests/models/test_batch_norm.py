"""Batch norm as TF's Inception has it: no scale, and TF's decay of the running statistics."""

import torch

from rethink.models import build_model, count_parameters
from rethink.models.batch_norm import set_batch_norm
from rethink.training.optimizers import make_optimizer
from rethink.training.settings import RunConfig


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
