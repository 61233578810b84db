"""The optimizers against TF's equations written out, and TF's RMSProp with epsilon 1 against
momentum SGD on a real run."""

import numpy as np
import pytest
import torch

from rethink.models import build_model
from rethink.training.loop import train_run
from rethink.training.optimizers import TFRMSProp, make_optimizer
from rethink.training.settings import RunConfig


def tf_rmsprop(w, grads, lrs, decay, momentum, epsilon, wd):
    """tf.compat.v1.train.RMSPropOptimizer with momentum (training_ops.cc's ApplyRMSProp), in
    float64: ms starts at one, epsilon inside the square root, lr inside the momentum."""
    ms, mom = np.ones_like(w), np.zeros_like(w)
    for g, lr in zip(grads, lrs, strict=True):
        g = g + wd * w  # the L2 loss's gradient, added to the loss's
        ms = decay * ms + (1 - decay) * g * g
        mom = momentum * mom + lr * g / np.sqrt(ms + epsilon)
        w = w - mom
    return w


@pytest.mark.parametrize(("epsilon", "wd", "scale"), [(1.0, 0.0, 1.0), (1e-3, 4e-5, 30.0)])
def test_tf_rmsprop_follows_tfs_equations(epsilon, wd, scale):
    """Five steps, the rate changing between them (TF's lr sits inside the momentum: a change
    applies to new gradients only), large gradients where epsilon is small."""
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 3))
    grads = [scale * rng.normal(size=(4, 3)) for _ in range(5)]
    lrs = [0.1, 0.1, 0.05, 0.05, 0.01]
    p = torch.nn.Parameter(torch.tensor(w0))
    optimizer = TFRMSProp([p], lr=lrs[0], decay=0.9, momentum=0.9, epsilon=epsilon, weight_decay=wd)
    for g, lr in zip(grads, lrs, strict=True):
        optimizer.param_groups[0]["lr"] = lr
        p.grad = torch.tensor(g)
        optimizer.step()
    expected = tf_rmsprop(w0, grads, lrs, 0.9, 0.9, epsilon, wd)
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-12)
    # torch's RMSprop (epsilon outside, mean square from zero) is another optimizer
    q = torch.nn.Parameter(torch.tensor(w0))
    theirs = torch.optim.RMSprop([q], lr=0.1, alpha=0.9, eps=epsilon, momentum=0.9)
    for g in grads[:1]:
        q.grad = torch.tensor(g)
        theirs.step()
    assert not np.allclose(
        q.detach().numpy(), tf_rmsprop(w0, grads[:1], lrs[:1], 0.9, 0.9, epsilon, 0)
    )


def test_weight_decay_on_weights_leaves_biases_and_batch_norm_alone():
    model = build_model("inception-quarter", (3, 28, 28), 10)
    config = RunConfig("inception-quarter", regularizer="wd", weight_decay=1e-3)
    layers = (torch.nn.Conv2d, torch.nn.Linear)
    weights = {m.weight for m in model.modules() if isinstance(m, layers)}
    decayed, free = make_optimizer(
        RunConfig(**{**config.__dict__, "weight_decay_on": "weights"}), model
    ).param_groups
    assert {id(p) for p in decayed["params"]} == {id(p) for p in weights}
    assert decayed["weight_decay"] == 1e-3 and free["weight_decay"] == 0.0
    names = {id(p): name for name, p in model.named_parameters()}
    assert all(names[id(p)].endswith("bias") or ".bn" in names[id(p)] or "bn" in names[id(p)]
               for p in free["params"])  # fmt: skip
    assert len(free["params"]) > 0
    (everything,) = make_optimizer(config, model).param_groups
    assert len(everything["params"]) == len(list(model.parameters()))


@pytest.fixture(scope="module")
def sgd_and_rmsprop(variants, tmp_path_factory):
    """mlp1x512 on 1,000 mnist5k digits for 12 epochs (96 steps of 128) at rate 0.01, from one
    initialization and one batch order: momentum SGD, TF's RMSProp with epsilon 1 (its
    recipe's), and with TF's default epsilon 1e-10. Summaries, and RMSProp's state after epoch
    11 (its last checkpoint)."""
    runs = {}
    for name, options in {
        "sgd": {}, "rmsprop": {"optimizer": "rmsprop"},
        "rmsprop-eps1e-10": {"optimizer": "rmsprop", "rmsprop_epsilon": 1e-10},
    }.items():  # fmt: skip
        run_dir = tmp_path_factory.mktemp(name)
        config = RunConfig(
            "mlp1x512", train_subset=1000, max_epochs=12, precision="fp32", device="cpu",
            stop_when_fitted=False, checkpoint_every=11, keep_checkpoint=True, **options,
        )  # fmt: skip
        summary = train_run(variants["true"], run_dir, config)
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)["optimizer"]["state"]
        runs[name] = summary, state
    return runs


def test_rmsprop_with_epsilon_1_is_momentum_sgd(sgd_and_rmsprop):
    """With gradients small against 1, sqrt(ms + 1) is about 1 and TF's RMSProp steps as momentum
    SGD does. Measured: after 88 steps every parameter's step factor 1 / sqrt(ms + 1) is within
    0.2% of 1 (0.06% here) and the run ends where SGD's does (train 98.5% against 98.6%, test
    89.2% both); with epsilon 1e-10 it is another optimizer (train 92.1%, test 83.2%). The mean
    square starting at one makes the first steps smaller: 1 / sqrt(1 + 0.9^t), a warmup of a
    few dozen steps."""
    (sgd, _), (rmsprop, state), (small_eps, small_state) = sgd_and_rmsprop.values()

    def step_factor_deviation(state):
        return max(float((1 / (s["ms"] + 1).sqrt() - 1).abs().max()) for s in state.values())

    assert step_factor_deviation(state) < 2e-3
    assert abs(rmsprop["train_acc"] - sgd["train_acc"]) <= 0.005
    assert abs(rmsprop["test_acc"] - sgd["test_acc"]) <= 0.005
    assert step_factor_deviation(small_state) > 0.02
    assert sgd["test_acc"] - small_eps["test_acc"] > 0.03
