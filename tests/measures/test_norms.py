"""The norm-based measures against values computed independently: numpy's SVD, Bartlett et
al.'s spectral complexity written out, an explicit sum over paths."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from rethink.measures.layers import weight_matrices
from rethink.measures.norms import norm_measures, path_norm


def mlp(sizes: list[int], seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def weight_arrays(model: nn.Sequential) -> list[np.ndarray]:
    return [m.weight.detach().double().numpy() for m in model if isinstance(m, nn.Linear)]


def test_norms_of_linear_layers_against_numpy():
    final, initial = mlp([7, 5, 4, 3], seed=0), mlp([7, 5, 4, 3], seed=1)
    x = torch.randn(2, 7)
    w, w0 = weight_matrices(final, x), weight_matrices(initial, x)
    got = norm_measures(w, w0)
    arrays, starts = weight_arrays(final), weight_arrays(initial)
    spectral = [np.linalg.svd(a, compute_uv=False)[0] for a in arrays]
    frobenius = [np.sqrt((a**2).sum()) for a in arrays]
    assert got["spec_log_prod"] == pytest.approx(sum(np.log(s**2) for s in spectral), rel=1e-12)
    assert got["spec_sum"] == pytest.approx(sum(s**2 for s in spectral), rel=1e-12)
    assert got["frob_log_prod"] == pytest.approx(sum(np.log(f**2) for f in frobenius), rel=1e-12)
    assert got["frob_over_spec"] == pytest.approx(
        sum(f**2 / s**2 for f, s in zip(frobenius, spectral, strict=True)), rel=1e-12
    )
    distance = [
        np.linalg.svd(a - b, compute_uv=False)[0] for a, b in zip(arrays, starts, strict=True)
    ]
    assert got["spec_distance"] == pytest.approx(sum(d**2 for d in distance), rel=1e-12)
    # Bartlett et al.'s spectral complexity, written out: the (2, 1) norm of (W - M)^T sums
    # the l2 norms of its columns, the rows of W - M
    two_one = [np.linalg.norm((a - b).T, axis=0).sum() for a, b in zip(arrays, starts, strict=True)]
    r = (
        np.prod(spectral)
        * sum((t / s) ** (2 / 3) for t, s in zip(two_one, spectral, strict=True)) ** 1.5
    )
    assert got["log_spectral_complexity"] == pytest.approx(math.log(r), rel=1e-12)


def test_path_norm_is_the_sum_over_every_input_output_path():
    model = mlp([3, 4, 3, 2], seed=2)
    a, b, c = weight_arrays(model)
    paths = sum(
        a[j, i] ** 2 * b[k, j] ** 2 * c[out, k] ** 2
        for i, j, k, out in itertools.product(range(3), range(4), range(3), range(2))
    )
    assert path_norm(model, torch.randn(2, 3)) == pytest.approx(math.sqrt(paths), rel=1e-12)
