"""Critical samples (Arpit et al. 2017, Section 4, algorithm LASS).

An image x is critical if some x' with ||x' - x||_inf <= r is predicted as another class than x.
LASS searches for one: starting at x, it repeatedly steps along the sign of the gradient of the
cross-entropy against the class currently predicted at x', adds Gaussian noise, and clips back
into the box around x, until the prediction changes or an iteration cap. The critical sample
ratio (CSR) of a set is the fraction of its images found critical. Everything is on the 0-255
pixel scale of the stored images, before preprocessing: the whitening belongs to the model.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Lass:
    """The search's settings; the defaults are Arpit et al.'s (their code caps at 100)."""

    radius: float = 0.3  # r: the box's half-width, in pixel units of 0-255
    step: float = 0.25  # alpha: the signed-gradient step
    noise: float = 0.2  # beta: the standard deviation of the noise added at each step
    iterations: int = 100

    @classmethod
    def of(cls, config) -> "Lass":
        """The search a run's settings (rethink.training.settings.RunConfig) ask for."""
        return cls(
            config.critical_radius, config.critical_step, config.critical_noise,
            config.critical_iterations,
        )  # fmt: skip


def critical_samples(
    model: torch.nn.Module,
    images: torch.Tensor,
    lass: Lass,
    transform: Callable[[torch.Tensor], torch.Tensor],
    gen: torch.Generator,
    batch_size: int,
) -> torch.Tensor:
    """Whether each raw image (N x C x H x W, 0-255) is critical for `model`, which sees
    `transform(images)`; the model is put in eval mode."""
    model.eval()
    floats = images if images.is_floating_point() else images.float()
    found = [_search(model, chunk, lass, transform, gen) for chunk in floats.split(batch_size)]
    return torch.cat(found)


def _search(model, x0, lass: Lass, transform, gen) -> torch.Tensor:
    with torch.no_grad():
        original = model(transform(x0)).argmax(dim=1)
    low, high = x0 - lass.radius, x0 + lass.radius
    x = x0.clone()
    flipped = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
    for _ in range(lass.iterations):
        x.requires_grad_(True)
        logits = model(transform(x))
        current = logits.argmax(dim=1)
        flipped |= current != original
        if bool(flipped.all()):
            break
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, current, reduction="sum"), x)
        with torch.no_grad():
            noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            moved = (x + lass.step * grad.sign() + lass.noise * noise).clamp(low, high)
            x = torch.where(flipped[:, None, None, None], x, moved)  # a found one stays put
    else:
        with torch.no_grad():
            flipped |= model(transform(x)).argmax(dim=1) != original
    return flipped


def is_probe_epoch(epoch: int) -> bool:
    """Whether a run measures CSR after `epoch` (1-based): at 1, 2, 4, 8, ... (and after its
    last epoch, whichever that turns out to be)."""
    return epoch > 0 and epoch & (epoch - 1) == 0
