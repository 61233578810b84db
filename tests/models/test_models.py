import numpy as np
import pytest
import torch
from torch import nn

from rethink.models import MODELS, ModelSpec, build_model, count_parameters, models_slowest_first
from rethink.models.alexnet import LocalResponseNorm, local_response_norm
from rethink.models.inception import ConvModule, ShiftBatchNorm2d

PAPER_COUNTS = {  # Zhang et al. 2017, Table 1, on 28x28x3 inputs
    "mlp1x512": 1_209_866,
    "mlp3x512": 1_735_178,
    "alexnet": 1_387_786,
    "inception": 1_649_402,
    "inception-nobn": 1_649_402,
}


# ImageNet's Inception V3 (Table 2) at 299x299x3, 1,000 classes: torchvision's architecture
# without the auxiliary head (27,161,264 with it).
IMAGENET_COUNTS = {"inception-v3": 23_834_568}


def test_every_model_of_the_paper_is_registered():
    assert set(PAPER_COUNTS) | set(IMAGENET_COUNTS) <= set(MODELS)


def test_models_come_slowest_first_by_the_cost_on_their_entries(monkeypatch):
    # What figures and the scheduler show of the paper's models (equal costs would keep the
    # registry's order)
    paper = [m for m in models_slowest_first() if m in PAPER_COUNTS | IMAGENET_COUNTS]
    assert paper == [
        "inception-v3",
        "inception",
        "inception-nobn",
        "alexnet",
        "mlp3x512",
        "mlp1x512",
    ]
    monkeypatch.setitem(MODELS, "tiny", ModelSpec("m:M", 0.1, minutes_per_million_images=1e-9))
    monkeypatch.setitem(MODELS, "unpriced", ModelSpec("m:M", 0.1))  # Inception's 6
    order = models_slowest_first()
    # (a user's own registrations may sit anywhere between)
    assert order[-1] == "tiny"
    assert order.index("inception") < order.index("unpriced") < order.index("inception-nobn")


def quarter_alexnet_count(channels: int) -> int:
    """Two 5x5 convolutions of 16 filters, 7x7x16 pooled, 96 and 48 units, 10 classes."""
    convs = (channels * 25 + 1) * 16 + (16 * 25 + 1) * 16
    return convs + (7 * 7 * 16 + 1) * 96 + (96 + 1) * 48 + (48 + 1) * 10


def quarter_inception_count(channels: int) -> int:
    """The paper's layout (its Figure 3) with a quarter of the filters: one weight per kernel
    entry and one batch-norm offset per output channel, a 10-class linear head."""

    def conv(c_in, c_out, k):
        return c_in * c_out * k * k + c_out

    total, c_in = conv(channels, 24, 3), 24  # the 3x3 stem of 96 / 4
    for kind, filters in [("I", (8, 8)), ("I", (8, 12)), ("D", (20,)), ("I", (28, 12)),
                          ("I", (24, 16)), ("I", (20, 20)), ("I", (12, 24)), ("D", (24,)),
                          ("I", (44, 40)), ("I", (44, 40))]:  # fmt: skip
        if kind == "I":
            total += conv(c_in, filters[0], 1) + conv(c_in, filters[1], 3)
            c_in = sum(filters)
        else:
            total += conv(c_in, filters[0], 3)
            c_in += filters[0]
    return total + c_in * 10 + 10


@pytest.mark.parametrize(
    ("name", "count"), [("alexnet-quarter", quarter_alexnet_count), ("inception-quarter",
                        quarter_inception_count)],
)  # fmt: skip
@pytest.mark.parametrize("channels", [1, 3])
def test_the_quarter_models_are_the_papers_with_a_quarter_of_every_layer(name, count, channels):
    """The default study's CPU concessions: the same layers, a quarter of the units."""
    assert count_parameters(build_model(name, (channels, 28, 28), 10)) == count(channels)
    full = build_model(name.removesuffix("-quarter"), (channels, 28, 28), 10)
    quarter = build_model(name, (channels, 28, 28), 10)
    assert [type(m) for m in full.modules()] == [type(m) for m in quarter.modules()]


def test_inception_v3_is_torchvisions_without_the_auxiliary_head():
    model = build_model("inception-v3", (3, 299, 299), 1000)
    assert count_parameters(model) == IMAGENET_COUNTS["inception-v3"]
    assert model.AuxLogits is None and model.dropout.p == 0  # dropout only when asked
    assert build_model("inception-v3", (3, 299, 299), 1000, dropout=0.2).dropout.p == 0.2
    small = build_model("inception-v3", (3, 75, 75), 3).eval()  # its smallest input
    assert small(torch.zeros(2, 3, 75, 75)).shape == (2, 3)


@pytest.mark.parametrize("name", PAPER_COUNTS)
def test_parameter_count_matches_table_1(name):
    assert count_parameters(build_model(name, (3, 28, 28), 10)) == PAPER_COUNTS[name]


@pytest.mark.parametrize("name", PAPER_COUNTS)
@pytest.mark.parametrize("shape", [(3, 28, 28), (1, 28, 28), (3, 32, 32)])
def test_models_take_any_dataset_shape(name, shape):
    model = build_model(name, shape, 10).eval()
    assert model(torch.zeros(4, *shape)).shape == (4, 10)


def test_batch_norm_only_in_inception():
    def norms(name):
        return [
            m for m in build_model(name, (3, 28, 28), 10).modules() if isinstance(m, nn.BatchNorm2d)
        ]

    with_bn, without_bn = norms("inception"), norms("inception-nobn")
    assert len(with_bn) == 1 + 2 * 8 + 2  # stem, two per Inception module, one per downsample
    assert all(m.weight is None and m.bias is not None for m in with_bn)  # a shift, no scale
    assert without_bn == []


def test_shift_batch_norm_is_batch_norm_then_a_learned_shift():
    """One kernel computes what batch norm without affine followed by a per-channel shift
    computes, in training and in eval mode, values and gradients."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 8, 5, 5, generator=gen).contiguous(memory_format=torch.channels_last)
    ours, plain = ShiftBatchNorm2d(8), nn.BatchNorm2d(8, affine=False)
    with torch.no_grad():
        ours.bias.copy_(torch.randn(8, generator=gen))
    shift = ours.bias.detach().clone().requires_grad_()
    for training in (True, False):
        ours.train(training), plain.train(training)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, expected = ours(xa), plain(xb) + shift[:, None, None]
        torch.testing.assert_close(out, expected)
        (out * x).sum().backward(), (expected * x).sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad)
        torch.testing.assert_close(ours.bias.grad, shift.grad)
        ours.bias.grad, shift.grad = None, None
    torch.testing.assert_close(ours.running_mean, plain.running_mean)
    torch.testing.assert_close(ours.running_var, plain.running_var)


@pytest.mark.parametrize("name", ["inception", "inception-nobn"])
def test_inception_activations_stay_bfloat16_under_autocast(name):
    """No float32 parameter promotes the activations between layers back to float32: each
    conv module hands the next a bfloat16 tensor."""
    model = build_model(name, (3, 28, 28), 10).to(memory_format=torch.channels_last)
    seen = []
    for module in model.modules():
        if isinstance(module, ConvModule):
            module.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    for training in (True, False):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model.train(training)(torch.randn(4, 3, 28, 28))
    assert len(seen) == 2 * (1 + 2 * 8 + 2) and set(seen) == {torch.bfloat16}


@pytest.mark.parametrize("name", PAPER_COUNTS)
def test_dropout_only_when_asked(name):
    def dropouts(rate):
        model = build_model(name, (3, 28, 28), 10, dropout=rate)
        return [m.p for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0]

    assert dropouts(0.0) == []
    assert dropouts(0.5) and set(dropouts(0.5)) == {0.5}
    assert count_parameters(build_model(name, (3, 28, 28), 10, dropout=0.5)) == PAPER_COUNTS[name]


def test_alexnet_uses_local_response_norm_and_two_pools():
    model = build_model("alexnet", (3, 28, 28), 10)
    kinds = [type(m) for m in model.features]
    assert kinds.count(LocalResponseNorm) == 2 and kinds.count(nn.MaxPool2d) == 2
    assert model.features(torch.zeros(1, 3, 28, 28)).shape == (1, 64, 7, 7)


def tf_lrn(x: np.ndarray, depth_radius=4, bias=1.0, alpha=0.001 / 9, beta=0.75) -> np.ndarray:
    """tf.nn.lrn's documented formula on N x C x H x W, written independently with a loop."""
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        window = x[:, max(0, c - depth_radius) : c + depth_radius + 1]
        out[:, c] = x[:, c] / (bias + alpha * (window**2).sum(axis=1)) ** beta
    return out


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_local_response_norm_is_tensorflows_and_pytorchs_without_avg_pool3d(memory_format):
    x = torch.randn(8, 64, 7, 7, generator=torch.Generator().manual_seed(0)) * 5
    x = x.contiguous(memory_format=memory_format).requires_grad_()
    ours, pytorchs = local_response_norm(), nn.LocalResponseNorm(9, 0.001, 0.75, 1.0)
    expected = tf_lrn(x.detach().double().numpy())
    np.testing.assert_allclose(ours(x).detach().double().numpy(), expected, rtol=1e-5)
    torch.testing.assert_close(ours(x), pytorchs(x), rtol=1e-6, atol=1e-6)
    grad = torch.randn_like(x)
    ours_grad, pytorchs_grad = (torch.autograd.grad(f(x), x, grad)[0] for f in (ours, pytorchs))
    torch.testing.assert_close(ours_grad, pytorchs_grad)
    with torch.profiler.profile() as profile:  # avg_pool3d's CUDA backward is nondeterministic
        ours(x).backward(grad)
    ops = {event.key for event in profile.key_averages()}
    assert "aten::convolution_backward" in ops and not any("avg_pool" in op for op in ops)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the window sum stays float32
        torch.testing.assert_close(ours(x), pytorchs(x), rtol=1e-6, atol=1e-6)


def test_signal_keeps_its_scale_through_inception_without_batch_norm():
    """Deep and without batch norm, the network must not fade to a constant at initialization
    (it would then predict the majority class forever): its features keep a usable scale."""
    torch.manual_seed(0)
    model = build_model("inception-nobn", (1, 28, 28), 10)
    std = model.features(torch.randn(64, 1, 28, 28)).std().item()
    assert 0.3 < std < 10, std


def test_local_response_norm_computes_in_float32_and_returns_the_input_dtype():
    """Under bf16 autocast: the window sum and power in float32, the result rounded once to
    bfloat16, as the next layer would round it."""
    x = (torch.randn(4, 64, 7, 7, generator=torch.Generator().manual_seed(1)) * 5).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = local_response_norm()(x)
    assert out.dtype == torch.bfloat16
    expected = torch.from_numpy(tf_lrn(x.float().numpy())).bfloat16()
    torch.testing.assert_close(out, expected, rtol=2**-7, atol=0)  # within one bfloat16 step
