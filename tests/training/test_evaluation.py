"""The evaluation pass against numbers worked out apart: mean loss, top-1, top-5 (only above
5 classes) and each example's prediction, loss and margin, over batches in any order."""

import numpy as np
import pytest
import torch

from rethink.training.batches import Batch
from rethink.training.context import Context, Process
from rethink.training.evaluation import evaluate

CONTEXT = Context(torch.device("cpu"), "fp32", Process())


class FixedLogits(torch.nn.Module):
    """Returns row i of `logits` for input i (the input holds the row index)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.as_tensor(logits, dtype=torch.float32)

    def forward(self, x):
        return self.logits[x.long()]


def batches(labels, size):
    index = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    for part in index.split(size):
        yield Batch(part, torch.as_tensor(labels)[part], part, len(part))


@pytest.mark.parametrize("n_classes", [4, 10])
def test_loss_top1_top5_and_per_example_values(n_classes):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(37, n_classes))
    labels = rng.integers(0, n_classes, size=37)
    result = evaluate(FixedLogits(logits), batches(labels, 8), CONTEXT, n_classes, examples=True)

    shifted = logits - logits.max(axis=1, keepdims=True)
    losses = -(shifted[np.arange(37), labels] - np.log(np.exp(shifted).sum(axis=1)))
    rank = (logits > logits[np.arange(37), labels][:, None]).sum(axis=1)  # classes above the label
    assert result.n == 37 and result.loss == pytest.approx(losses.mean(), rel=1e-6)
    assert result.correct == (rank == 0).sum() == (logits.argmax(axis=1) == labels).sum()
    if n_classes > 5:
        assert result.top5 == (rank < 5).sum() and 0 < result.top5 < 37
    else:
        assert result.top5 is None and np.isnan(result.top5_accuracy)

    order = result.index.argsort()  # per example, wherever its batch came
    np.testing.assert_array_equal(result.index[order].numpy(), np.arange(37))
    np.testing.assert_array_equal(result.predictions[order].numpy(), logits.argmax(axis=1))
    np.testing.assert_allclose(result.losses[order].numpy(), losses, rtol=1e-5)
    others = np.where(np.eye(n_classes, dtype=bool)[labels], -np.inf, logits).max(axis=1)
    margins = logits[np.arange(37), labels] - others
    np.testing.assert_allclose(result.margins[order].numpy(), margins, rtol=1e-5, atol=1e-6)


def test_without_examples_nothing_is_kept_per_example():
    labels = np.arange(12) % 3
    result = evaluate(FixedLogits(np.eye(3)[labels]), batches(labels, 5), CONTEXT, 3)
    assert result.correct == 12 and result.all_correct and result.predictions is None
