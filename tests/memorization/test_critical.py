"""LASS against a classifier whose distance to its decision boundary is known exactly."""

import pytest
import torch

from rethink.memorization.critical import Lass, critical_samples, is_probe_epoch


def linear_classifier(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    return model.double()


def images_around_the_boundary(model, seed: int) -> torch.Tensor:
    """400 images within 1 of a point on the classifier's boundary, in each pixel."""
    linear = model[1]
    w = (linear.weight[1] - linear.weight[0]).detach()
    b = (linear.bias[1] - linear.bias[0]).detach()
    on_boundary = -b * w / (w @ w)
    noise = torch.rand(400, 4, generator=torch.Generator().manual_seed(seed), dtype=w.dtype)
    return (on_boundary + 2 * noise - 1).reshape(400, 1, 2, 2)


def boundary_distance(model, images) -> torch.Tensor:
    """L-inf distance of each image to the boundary of a two-class linear classifier:
    |w.x + b| / ||w||_1, with w and b the differences of the two classes' rows."""
    linear = model[1]
    w = linear.weight[1] - linear.weight[0]
    b = linear.bias[1] - linear.bias[0]
    return ((images.flatten(1) @ w + b).abs() / w.abs().sum()).detach()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_image_is_critical_exactly_when_the_boundary_is_within_the_radius(seed):
    model = linear_classifier(seed)
    images = images_around_the_boundary(model, seed)
    distance = boundary_distance(model, images)
    lass = Lass(radius=0.3, step=0.05, noise=0.0, iterations=100, stop_below=0)
    found = critical_samples(model, images, lass, lambda x: x, torch.Generator(), 64)
    clear = (distance - lass.radius).abs() > 1e-6  # no ties at the sphere
    assert ((distance < lass.radius) == found)[clear].all()
    assert 0 < found.sum() < len(found)  # both kinds present


def test_noise_stays_in_the_box_and_too_few_steps_fall_short():
    model = linear_classifier()
    images = images_around_the_boundary(model, 5)
    distance = boundary_distance(model, images)
    noisy = Lass(radius=0.3, step=0.05, noise=0.2, iterations=100, stop_below=0)
    found = critical_samples(
        model, images, noisy, lambda x: x, torch.Generator().manual_seed(0), 64
    )
    assert not found[distance > noisy.radius + 1e-9].any()  # clipped: never beyond r
    short = Lass(radius=0.3, step=0.01, noise=0.0, iterations=5, stop_below=0)  # 0.05 at most
    found = critical_samples(model, images, short, lambda x: x, torch.Generator(), 64)
    assert (found == (distance < 0.05)).all() or (found <= (distance < 0.05 + 1e-9)).all()


def lass_by_hand(model, x0: torch.Tensor, lass: Lass, gen: torch.Generator) -> torch.Tensor:
    """Arpit et al.'s search written out for one batch: x <- clip(x + alpha sign(grad of the
    loss at the current prediction) + beta n, x0 - r, x0 + r), n ~ N(0, 1) drawn for the batch
    at each iteration; critical once the prediction differs from the original one; stopped
    once a step finds fewer than `stop_below` new critical samples."""
    original = model(x0).argmax(dim=1)
    x, critical = x0.clone(), torch.zeros(len(x0), dtype=torch.bool)
    for iteration in range(lass.iterations):
        x = x.detach().requires_grad_(True)
        logits = model(x)
        new = (logits.argmax(dim=1) != original) & ~critical
        critical |= new
        if critical.all() or (iteration > 0 and new.sum() < lass.stop_below):
            return critical
        loss = torch.nn.functional.cross_entropy(logits, logits.argmax(dim=1), reduction="sum")
        grad = torch.autograd.grad(loss, x)[0]
        step = lass.step * grad.sign() + lass.noise * torch.randn(x.shape, generator=gen,
                                                                  dtype=x.dtype)  # fmt: skip
        moved = torch.minimum(torch.maximum(x + step, x0 - lass.radius), x0 + lass.radius)
        x = torch.where(critical[:, None, None, None], x, moved).detach()
    return critical | (model(x).argmax(dim=1) != original)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_noisy_search_follows_the_papers_update_step_by_step(seed):
    """With noise, whether a point near the radius is found depends on every step: the same
    draws must give the same points as the update written out by hand."""
    model = linear_classifier(seed)
    images = images_around_the_boundary(model, seed)
    lass = Lass(radius=0.3, step=0.04, noise=0.05, iterations=12, stop_below=0)
    found = critical_samples(
        model, images, lass, lambda x: x, torch.Generator().manual_seed(seed), len(images)
    )
    expected = lass_by_hand(model, images, lass, torch.Generator().manual_seed(seed))
    assert torch.equal(found, expected)
    distance = boundary_distance(model, images)
    near = (distance > 0.2) & (distance < lass.radius)  # found or not by the path taken
    assert 0 < found[near].sum() < near.sum()


def test_arpits_stopping_rule_ends_the_whole_sets_search_and_finds_fewer():
    """Stopped once a step finds fewer than 20 new critical samples, over all chunks together:
    the chunked search equals the rule written out for the whole batch, and finds a subset of
    what the search to the cap finds (the cap's CSR is biased upward against Arpit's)."""
    model = linear_classifier(3)
    images = images_around_the_boundary(model, 3)
    stopped = Lass(radius=0.3, step=0.01, noise=0.0, iterations=100, stop_below=20)
    found = critical_samples(model, images, stopped, lambda x: x, torch.Generator(), 64)
    expected = lass_by_hand(model, images, stopped, torch.Generator())
    assert torch.equal(found, expected)
    capped = critical_samples(
        model, images, Lass(radius=0.3, step=0.01, noise=0.0, iterations=100, stop_below=0),
        lambda x: x, torch.Generator(), 64,
    )  # fmt: skip
    assert (found <= capped).all() and found.sum() < capped.sum()


def test_probes_run_at_powers_of_two():
    assert [e for e in range(1, 70) if is_probe_epoch(e)] == [1, 2, 4, 8, 16, 32, 64]
