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
    lass = Lass(radius=0.3, step=0.05, noise=0.0, iterations=100)
    found = critical_samples(model, images, lass, lambda x: x, torch.Generator(), 64)
    clear = (distance - lass.radius).abs() > 1e-6  # no ties at the sphere
    assert ((distance < lass.radius) == found)[clear].all()
    assert 0 < found.sum() < len(found)  # both kinds present


def test_noise_stays_in_the_box_and_too_few_steps_fall_short():
    model = linear_classifier()
    images = images_around_the_boundary(model, 5)
    distance = boundary_distance(model, images)
    noisy = Lass(radius=0.3, step=0.05, noise=0.2, iterations=100)
    found = critical_samples(
        model, images, noisy, lambda x: x, torch.Generator().manual_seed(0), 64
    )
    assert not found[distance > noisy.radius + 1e-9].any()  # clipped: never beyond r
    short = Lass(radius=0.3, step=0.01, noise=0.0, iterations=5)  # reaches 0.05 at most
    found = critical_samples(model, images, short, lambda x: x, torch.Generator(), 64)
    assert (found == (distance < 0.05)).all() or (found <= (distance < 0.05 + 1e-9)).all()


def test_probes_run_at_powers_of_two():
    assert [e for e in range(1, 70) if is_probe_epoch(e)] == [1, 2, 4, 8, 16, 32, 64]
