"""Flatness: how far the trained weights can move before training accuracy falls by
ACCURACY_DROP, under Gaussian noise (PAC-Bayes; Jiang et al. 2020, Dziugaite and Roy 2017) or
under the worst move gradient ascent finds in a box (sharpness; Keskar et al. 2017, in Jiang et
al.'s form). Each is a bisection on a scale, plain or relative to each weight's magnitude.

Every parameter of the network (batch norm folded in: rethink.measures.layers) moves. The
noise directions and the ascent's starting point are drawn once per search from its seed, and
only their scale changes between the bisection's steps, so that the accuracy a scale gives
does not jump from one step to the next with a new draw.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

ACCURACY_DROP = 0.1  # the fall in training accuracy that defines the scale (Jiang et al.)
TOLERANCE = 0.01  # a scale whose fall is within this of ACCURACY_DROP ends the bisection
MAGNITUDE_EPS = 1e-3  # magnitude-aware forms: noise or box sigma |w| + this
# The bracketing's range, start * 2**(+-OCTAVES): beyond it a network is taken as flat (an
# untrained one may lose less than ACCURACY_DROP under any noise) or infinitely sharp.
OCTAVES = 12
CHUNK = 500  # images per forward pass
# Where each search starts (plain, magnitude-aware): about the scales found for the default
# study's networks. Elsewhere the bracketing takes a few more steps.
SIGMA_START = (0.02, 0.3)
ALPHA_START = (0.002, 0.1)


def largest_scale(
    drop: Callable[[float], float], start: float, steps: int, target: float = ACCURACY_DROP
) -> float:
    """The largest scale s with drop(s) <= target, for a drop that grows with s: first an
    octave [s, 2s] with drop(s) <= target < drop(2s), by doubling or halving from `start`, then
    `steps` bisections within it, stopping early at a drop within TOLERANCE below the target.
    0 if even start * 2**-OCTAVES drops further, inf if start * 2**OCTAVES does not."""
    low = high = start
    if drop(start) <= target:
        for _ in range(OCTAVES):
            high = 2 * low
            if drop(high) > target:
                break
            low = high
        else:
            return math.inf
    else:
        for _ in range(OCTAVES):
            low = high / 2
            if drop(low) <= target:
                break
            high = low
        else:
            return 0.0
    for _ in range(steps):
        middle = (low + high) / 2
        fall = drop(middle)
        if target - TOLERANCE <= fall <= target:
            return middle
        low, high = (middle, high) if fall <= target else (low, middle)
    return low


@dataclass
class SearchData:
    """The training examples a search evaluates on, and what the network gets right there."""

    inputs: torch.Tensor
    labels: torch.Tensor

    def logits(self, model: nn.Module, params: dict) -> torch.Tensor:
        return torch.cat([
            functional_call(model, params, (chunk,)) for chunk in self.inputs.split(CHUNK)
        ])  # fmt: skip

    def accuracy(self, model: nn.Module, params: dict) -> float:
        with torch.no_grad():
            return float((self.logits(model, params).argmax(1) == self.labels).float().mean())


def _parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach() for name, p in model.named_parameters()}


def _noise_std(params: dict, sigma: float, magnitude_aware: bool) -> dict[str, torch.Tensor]:
    """Each weight's noise standard deviation: sigma, or sqrt(sigma^2 w^2 + eps^2)."""
    if not magnitude_aware:
        return {name: torch.full_like(w, sigma) for name, w in params.items()}
    return {name: (sigma**2 * w.square() + MAGNITUDE_EPS**2).sqrt() for name, w in params.items()}


def _box(params: dict, alpha: float, magnitude_aware: bool) -> dict[str, torch.Tensor]:
    """Each weight's half-width of the box: alpha, or alpha |w| + eps."""
    if not magnitude_aware:
        return {name: torch.full_like(w, alpha) for name, w in params.items()}
    return {name: alpha * w.abs() + MAGNITUDE_EPS for name, w in params.items()}


def pac_bayes_sigma(
    model: nn.Module,
    data: SearchData,
    *,
    magnitude_aware: bool,
    draws: int,
    steps: int,
    seed: int,
) -> float:
    """The largest sigma for which adding noise N(0, sigma^2) to every weight (magnitude-aware:
    N(0, sigma^2 w^2 + eps^2)) lowers training accuracy, averaged over `draws` noise draws, by
    at most ACCURACY_DROP."""
    model.eval()
    params = _parameters(model)
    base = data.accuracy(model, params)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = [
        {n: torch.randn(w.shape, generator=gen).to(w.device) for n, w in params.items()}
        for _ in range(draws)
    ]

    def drop(sigma: float) -> float:
        std = _noise_std(params, sigma, magnitude_aware)
        accuracies = [
            data.accuracy(model, {n: w + std[n] * z[n] for n, w in params.items()}) for z in noise
        ]
        return base - sum(accuracies) / draws

    return largest_scale(drop, start=SIGMA_START[magnitude_aware], steps=steps)


def worst_in_box(
    model: nn.Module, data: SearchData, boxes: dict[str, torch.Tensor], start: dict, steps: int
) -> float:
    """The lowest training accuracy found at the centre, at `start` (a point of the box given
    as a fraction of each half-width, in [-1, 1]) and along `steps` steps of projected gradient
    ascent on the cross-entropy within |u| <= `boxes`. Never above the centre's.

    A step moves each weight by its half-width times its gradient over the network's largest
    gradient (in units of half-widths): a gradient ascent, as Jiang et al.'s, along which the
    weights that matter move most; not the box's worst point, which signed steps approach
    (docs/measures.md: what each gives)."""
    params = _parameters(model)
    worst = data.accuracy(model, params)
    u = {n: (start[n] * boxes[n]).requires_grad_() for n in params}
    for t in range(steps + 1):
        moved = {n: w + u[n] for n, w in params.items()}
        logits = data.logits(model, moved)
        worst = min(worst, float((logits.argmax(1) == data.labels).float().mean()))
        if t == steps:
            break
        loss = F.cross_entropy(logits, data.labels)
        grads = torch.autograd.grad(loss, list(u.values()), allow_unused=True)
        with torch.no_grad():
            scaled = {n: _zero_if_unused(g, u[n]) * boxes[n] for n, g in zip(u, grads, strict=True)}
            largest = max(float(s.abs().max()) for s in scaled.values()) or 1.0
            u = {
                n: torch.clamp(u[n] + boxes[n] * s / largest, -boxes[n], boxes[n]).requires_grad_()
                for n, s in scaled.items()
            }
    return worst


def _zero_if_unused(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if grad is None else grad  # a parameter forward does not use


def sharpness_alpha(
    model: nn.Module, data: SearchData, *, magnitude_aware: bool, steps: int, ascent_steps: int,
    seed: int,
) -> float:  # fmt: skip
    """The largest alpha such that gradient ascent within the box |u_i| <= alpha
    (magnitude-aware: alpha |w_i| + eps) lowers training accuracy by at most ACCURACY_DROP."""
    model.eval()
    params = _parameters(model)
    base = data.accuracy(model, params)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    start = {
        n: (2 * torch.rand(w.shape, generator=gen) - 1).to(w.device) for n, w in params.items()
    }

    def drop(alpha: float) -> float:
        boxes = _box(params, alpha, magnitude_aware)
        return base - worst_in_box(model, data, boxes, start, ascent_steps)

    return largest_scale(drop, start=ALPHA_START[magnitude_aware], steps=steps)
