"""Batch norm folded into the layer it follows, against the eval-mode output of the unfolded
network; the weight matrices in the order the forward pass uses them."""

import torch
from torch import nn

from rethink.measures.layers import fold_batch_norm, weight_matrices
from rethink.models import build_model
from rethink.models.inception import ShiftBatchNorm2d


def randomized_batch_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """`model` with batch norm statistics and affine parameters far from their defaults."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 3 + 0.1)
                if m.weight is not None:
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen))
    return model


class ReversedRegistration(nn.Module):
    """Layers registered in the opposite order to the one forward calls them in, a linear layer
    followed by BatchNorm1d, and a convolution followed by the paper's shift-only batch norm."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(6, 3)
        self.head_norm = nn.BatchNorm1d(6)
        self.hidden = nn.Linear(4 * 3 * 3, 6)
        self.norm = ShiftBatchNorm2d(4)
        self.conv = nn.Conv2d(2, 4, 3)

    def forward(self, x):
        x = torch.relu(self.norm(self.conv(x))).flatten(1)
        return self.head(torch.relu(self.head_norm(self.hidden(x))))


def test_folding_batch_norm_keeps_the_eval_mode_output_and_leaves_no_batch_norm():
    model = randomized_batch_norms(ReversedRegistration())
    x = torch.randn(8, 2, 5, 5)
    folded = fold_batch_norm(model, x[:2])
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    torch.testing.assert_close(folded(x), model.eval()(x), rtol=1e-5, atol=1e-5)
    # the layers come in the order forward calls them, kernels as (out, in * k * k)
    shapes = [tuple(w.shape) for w in weight_matrices(model, x[:2])]
    assert shapes == [(4, 2 * 3 * 3), (6, 36), (3, 6)]


def test_folding_the_registered_inception_keeps_its_eval_mode_output():
    model = randomized_batch_norms(build_model("inception-quarter", (1, 28, 28), 10, 0.0))
    x = torch.randn(4, 1, 28, 28)
    folded = fold_batch_norm(model, x[:2])
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    torch.testing.assert_close(folded(x), model.eval()(x), rtol=1e-4, atol=1e-4)


class InPlaceBetween(nn.Module):
    """A batch norm that reads a convolution's output after an in-place ReLU changed it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.relu = nn.ReLU(inplace=True)
        self.norm = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.norm(self.relu(self.conv(x))).flatten(1)


def test_a_batch_norm_after_an_in_place_op_is_not_folded_into_the_layer_before_it():
    model = randomized_batch_norms(InPlaceBetween())
    x = torch.randn(4, 2, 5, 5)
    folded = fold_batch_norm(model, x[:2])
    assert isinstance(folded.norm, nn.BatchNorm2d)
    torch.testing.assert_close(folded(x), model.eval()(x))
