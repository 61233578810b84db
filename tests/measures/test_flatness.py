"""The flatness searches: the bisection on a monotone toy, the PAC-Bayes sigma where the
accuracy under noise has a closed form, and a box search that never reports a point better
than the centre."""

import math

import pytest
import torch
from scipy.stats import norm
from torch import nn

from rethink.measures.flatness import (
    ACCURACY_DROP,
    TOLERANCE,
    SearchData,
    largest_scale,
    pac_bayes_sigma,
    sharpness_alpha,
    worst_in_box,
)


@pytest.mark.parametrize("start", [1e-4, 0.3, 1.0, 50.0])
def test_bisection_finds_the_scale_of_a_monotone_drop(start):
    calls = []

    def drop(s):
        calls.append(s)
        return s**2

    found = largest_scale(drop, start=start, steps=30)
    # stops at a drop within the tolerance of the target
    assert abs(found**2 - ACCURACY_DROP) <= TOLERANCE
    assert len(calls) < 40


@pytest.mark.parametrize("steps", [3, 8, 20])
def test_bisection_of_a_step_never_passes_it_and_halves_the_bracket_each_step(steps):
    edge = 0.37

    def drop(s):
        return 0.0 if s < edge else 1.0

    found = largest_scale(drop, start=1.0, steps=steps)
    assert found < edge
    assert found >= edge - edge / 2**steps  # the octave [edge/2, edge], halved `steps` times


def test_bisection_limits():
    assert largest_scale(lambda s: 0.0, start=1.0, steps=5) == math.inf
    assert largest_scale(lambda s: 1.0, start=1.0, steps=5) == 0.0


class PerExampleWeight(nn.Module):
    """Example i (its input is i) is right iff weight i is positive: under Gaussian noise
    N(0, s^2) on weights equal to w, the expected accuracy is Phi(w / s)."""

    def __init__(self, n: int, value: float):
        super().__init__()
        self.w = nn.Parameter(torch.full((n,), value))

    def forward(self, x):
        own = self.w[x.long()]
        return torch.stack([own, torch.zeros_like(own)], dim=1)


def index_data(n: int) -> SearchData:
    return SearchData(torch.arange(n, dtype=torch.float32), torch.zeros(n, dtype=torch.int64))


@pytest.mark.parametrize(("value", "magnitude_aware"), [(1.0, False), (2.0, False), (2.0, True)])
def test_pac_bayes_sigma_against_the_normal_distribution(value, magnitude_aware):
    n = 20_000
    model, data = PerExampleWeight(n, value), index_data(n)
    sigma = pac_bayes_sigma(model, data, magnitude_aware=magnitude_aware, draws=2, steps=12, seed=0)
    # noise standard deviation sigma (magnitude-aware: sqrt(sigma^2 w^2 + eps^2) ~ sigma w):
    # accuracy Phi(w / std) = 1 - ACCURACY_DROP, up to the tolerance on the drop
    std = sigma * value if magnitude_aware else sigma
    assert abs((1 - norm.cdf(value / std)) - ACCURACY_DROP) <= TOLERANCE + 0.005
    # the closed form, for the reader: sigma = w / Phi^-1(0.9) (plain)
    expected = value / norm.ppf(1 - ACCURACY_DROP)
    assert std == pytest.approx(expected, rel=0.06)


class WorstAtTheCentre(nn.Module):
    """Every example is wrong at w = 0 and right once |w| > 0.5: the centre of any box around
    0 is its worst point."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        score = self.w.square() * torch.ones_like(x)
        return torch.stack([0.25 - score, score], dim=1)


def test_a_box_search_never_reports_a_point_better_than_the_centre():
    model, data = WorstAtTheCentre(), SearchData(torch.ones(16), torch.ones(16, dtype=torch.int64))
    for fraction in (-1.0, -0.3, 0.7, 1.0):
        box = {"w": torch.full((1,), 2.0)}
        worst = worst_in_box(model, data, box, {"w": torch.full((1,), fraction)}, steps=3)
        assert worst == 0.0  # the centre's accuracy


def test_sharpness_finds_a_box_and_grows_with_what_the_box_may_reach():
    torch.manual_seed(0)
    x = torch.randn(400, 5)
    teacher = torch.randn(5, 3)
    labels = (x @ teacher).argmax(1)
    model = nn.Linear(5, 3)
    with torch.no_grad():
        model.weight.copy_(teacher.T)
        model.bias.zero_()
    data = SearchData(x, labels)
    few = sharpness_alpha(model, data, magnitude_aware=False, steps=6, ascent_steps=0, seed=0)
    more = sharpness_alpha(model, data, magnitude_aware=False, steps=6, ascent_steps=5, seed=0)
    assert 0 < more <= few < math.inf  # ascent finds worse points: a smaller box suffices
