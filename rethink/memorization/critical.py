"""Critical samples (Arpit et al. 2017, Section 4, algorithm LASS).

An image x is critical if some x' with ||x' - x||_inf <= r is predicted as another class than x.
LASS searches for one: starting at x, it repeatedly steps along the sign of the gradient of the
cross-entropy against the class currently predicted at x', adds Gaussian noise, and clips back
into the box around x, until the prediction changes. The critical sample ratio (CSR) of a set is
the fraction of its images found critical. Everything is on the 0-255 pixel scale of the stored
images, before preprocessing: the whitening belongs to the model.

When the search stops decides the CSR: every further iteration can only find more. Arpit et
al.'s code stops the whole set's search once an iteration finds fewer than 20 new critical
samples (`stop_below`, the default), with 100 iterations at most; searching all 100 iterations
(`stop_below: 0`) finds more, so its CSR is biased upward against theirs.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Lass:
    """The search's settings; the defaults are Arpit et al.'s."""

    radius: float = 0.3  # r: the box's half-width, in pixel units of 0-255
    step: float = 0.25  # alpha: the signed-gradient step
    noise: float = 0.2  # beta: the standard deviation of the noise added at each step
    iterations: int = 100  # the cap
    stop_below: int = 20  # stop once an iteration finds fewer new critical samples; 0: never

    @classmethod
    def of(cls, config) -> "Lass":
        """The search a run's settings (rethink.training.settings.RunConfig) ask for."""
        return cls(
            config.critical_radius, config.critical_step, config.critical_noise,
            config.critical_iterations, config.critical_stop_below,
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
    `transform(images)`; the model is put in eval mode. The images are searched in chunks of
    `batch_size`, all chunks one iteration at a time, so that the stopping rule counts the new
    critical samples of the whole set."""
    model.eval()
    floats = images if images.is_floating_point() else images.float()
    chunks = floats.split(batch_size)
    with torch.no_grad():
        original = [model(transform(x0)).argmax(dim=1) for x0 in chunks]
    boxes = [(x0 - lass.radius, x0 + lass.radius) for x0 in chunks]
    points = [x0.clone() for x0 in chunks]
    flipped = [torch.zeros(len(x0), dtype=torch.bool, device=x0.device) for x0 in chunks]
    for iteration in range(lass.iterations + 1):
        new = 0
        for i in range(len(chunks)):
            if bool(flipped[i].all()):
                continue
            x = points[i].requires_grad_(True)
            logits = model(transform(x))
            current = logits.argmax(dim=1)
            found = (current != original[i]) & ~flipped[i]
            new += int(found.sum())
            flipped[i] |= found
            if iteration == lass.iterations:
                break
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, current, reduction="sum"), x)
            with torch.no_grad():
                noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
                moved = (x + lass.step * grad.sign() + lass.noise * noise).clamp(*boxes[i])
                points[i] = torch.where(flipped[i][:, None, None, None], x, moved).detach()
        # The first evaluation is at the images themselves, where nothing can be found yet.
        if iteration > 0 and new < lass.stop_below:
            break
    return torch.cat(flipped)


def is_probe_epoch(epoch: int) -> bool:
    """Whether a run measures CSR after `epoch` (1-based): at 1, 2, 4, 8, ... (and after its
    last epoch, whichever that turns out to be)."""
    return epoch > 0 and epoch & (epoch - 1) == 0
