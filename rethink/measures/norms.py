"""Norm-based measures of a trained network's weight matrices (rethink.measures.layers), with
its initial ones as reference: Jiang et al. 2020's appendix and Bartlett, Foster, Telgarsky
2017. Products of d norms overflow for deep networks: they are kept as logarithms."""

import copy
import math

import torch
from torch import nn

from rethink.measures.layers import WEIGHTED, fold_batch_norm


def spectral_norm(matrix: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(matrix, ord=2))


def frobenius_sq(matrix: torch.Tensor) -> float:
    return float(matrix.square().sum())


def norm_measures(final: list[torch.Tensor], initial: list[torch.Tensor]) -> dict[str, float]:
    """Sums and log-products of squared Frobenius and spectral norms, the distances from the
    initialization, the Frobenius-over-spectral ratio (no margin: rethink.measures.run divides
    where a measure asks), and the log of Bartlett et al.'s spectral complexity."""
    frob = [frobenius_sq(w) for w in final]
    spectral = [spectral_norm(w) for w in final]
    spec = [s**2 for s in spectral]
    return {
        "frob_sum": sum(frob),
        "frob_log_prod": sum(map(math.log, frob)),
        "spec_sum": sum(spec),
        "spec_log_prod": sum(map(math.log, spec)),
        "frob_distance": sum(frobenius_sq(w - w0) for w, w0 in zip(final, initial, strict=True)),
        "spec_distance": sum(
            spectral_norm(w - w0) ** 2 for w, w0 in zip(final, initial, strict=True)
        ),
        "frob_over_spec": sum(f / s for f, s in zip(frob, spec, strict=True)),
        "log_spectral_complexity": log_spectral_complexity(final, initial, spectral),
    }


def log_spectral_complexity(final: list, initial: list, spectral: list[float]) -> float:
    """log R, Bartlett et al.'s spectral complexity with the initial weights as reference M:
    R = prod_i ||W_i||_2 * (sum_i ||W_i^T - M_i^T||_{2,1}^{2/3} / ||W_i||_2^{2/3})^{3/2},
    ||A||_{2,1} the sum of the l2 norms of A's columns (of W's rows: one per output unit);
    `spectral`: the ||W_i||_2."""
    ratios = sum(
        float((w - w0).norm(dim=1).sum()) ** (2 / 3) / s ** (2 / 3)
        for w, w0, s in zip(final, initial, spectral, strict=True)
    )
    return sum(map(math.log, spectral)) + 1.5 * math.log(ratios)


def path_norm(model: nn.Module, example: torch.Tensor) -> float:
    """The l2 path norm: sqrt of the sum over classes of the output of the network (batch norm
    folded) with every weight squared, biases zero, on an all-ones input. For layers joined by
    ReLUs it is sqrt(sum over input-output paths of the product of the squared weights on the
    path); through max pooling or response normalization it is what that network computes, as
    in Jiang et al.'s code."""
    squared = copy.deepcopy(fold_batch_norm(model, example)).double()
    with torch.no_grad():
        for module in squared.modules():
            if isinstance(module, WEIGHTED):
                module.weight.square_()
                if module.bias is not None:
                    module.bias.zero_()
        ones = torch.ones_like(example[:1], dtype=torch.float64)
        return math.sqrt(float(squared(ones).sum()))
