"""Every measure of finished runs (rule measure_runs, one job per variant: its file is read and
torch imported once for all the runs trained on it), from each run's kept weights, its training
examples as it saw them (center crop, whitened) and its loss history."""

import dataclasses
import json
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rethink.data.h5io import read_dataset
from rethink.device import setup_device
from rethink.files import atomic_path
from rethink.measures import MEASURES
from rethink.measures.flatness import SearchData, pac_bayes_sigma, sharpness_alpha
from rethink.measures.layers import fold_batch_norm, weight_matrices
from rethink.measures.norms import norm_measures, path_norm
from rethink.memorization.record import margins as example_margins
from rethink.models.weights import load_run_model
from rethink.runs import RunKey
from rethink.training.preprocess import preprocess

log = logging.getLogger(__name__)

MARGIN_QUANTILE = 0.1  # gamma: the 10th-percentile training margin (Jiang et al.)
CROSS_ENTROPIES = (0.1, 0.01)  # the optimization measures' thresholds


@dataclass(frozen=True)
class MeasureSettings:
    """Config key `measures`: its meaning and defaults in schemas/config.schema.yaml."""

    seed: int
    search_images: int
    noise_draws: int
    bisection_steps: int
    ascent_steps: int
    device: str

    @classmethod
    def from_config(cls, measures: dict) -> "MeasureSettings":
        return cls(**{k: v for k, v in measures.items() if k != "enabled"})


def training_inputs(train, run_config: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's training inputs from its variant's training split `train` (center crop,
    whitened: what its evaluation saw) and their labels."""
    kept = slice(run_config["train_subset"])
    images = torch.from_numpy(train.images[kept]).permute(0, 3, 1, 2)
    inputs = torch.cat([preprocess(chunk, run_config["crop_size"]) for chunk in images.split(512)])
    return inputs.to(device), torch.from_numpy(train.labels[kept]).long().to(device)


def cross_entropy_steps(steps: pd.DataFrame) -> dict[str, float]:
    """Steps until the recorded training loss (block means of steps.csv) first reaches 0.1,
    and from there to 0.01; NaN where the run never got there."""
    first = {}
    for level in CROSS_ENTROPIES:
        reached = steps.step[steps.train_loss <= level]
        first[level] = float(reached.iloc[0]) if len(reached) else math.nan
    low, lower = CROSS_ENTROPIES
    return {"steps_to_ce_0.1": first[low], "steps_ce_0.1_to_0.01": first[lower] - first[low]}


def _logits(model, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(chunk) for chunk in inputs.split(500)])


class Timer:
    def __init__(self):
        self.seconds = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def measure_run(run_dir: Path, inputs: torch.Tensor, labels: torch.Tensor, settings):
    """(the measures of the run stored in `run_dir`, what its searches found and cost, its
    training examples' margins), on the run's training `inputs` and `labels`."""
    device = inputs.device
    final, initial = (load_run_model(run_dir, which, device) for which in ("final", "initial"))
    m = len(labels)
    if not all(torch.isfinite(p).all() for p in final.state_dict().values()):
        log.warning("%s: its final weights are not all finite (diverged): no measure", run_dir)
        margins = pd.DataFrame({"example": np.arange(m), "label": labels.cpu().numpy(),
                                "margin": math.nan, "normalized_margin": math.nan})  # fmt: skip
        return dict.fromkeys(MEASURES, math.nan), {"train_images": m}, margins
    example = inputs[:2]
    timer = Timer()

    with timer("margins"):
        margins = example_margins(_logits(final, inputs), labels).double().cpu()
        gamma = float(torch.quantile(margins, MARGIN_QUANTILE))
        accuracy = float((margins > 0).double().mean())
    with timer("norms"):
        weights, start = weight_matrices(final, example), weight_matrices(initial, example)
        norms = norm_measures(weights, start)
        log_r = norms["log_spectral_complexity"]
        path = path_norm(final, example)
    data_norm = float(inputs.double().norm())
    normalized = margins * math.exp(-log_r - math.log(data_norm / m))  # R overflows: its log
    values = {"params": float(sum(p.numel() for p in final.parameters())), **norms}
    values["path_norm"] = path
    if gamma > 0:  # over the margin: defined where 90% of the examples are fitted
        for name in ("frob_sum", "spec_sum"):
            values[f"{name}_over_margin"] = norms[name] / gamma**2
        for name in ("frob_log_prod", "spec_log_prod"):
            values[f"{name}_over_margin"] = norms[name] - 2 * math.log(gamma)
        values["path_norm_over_margin"] = path / gamma**2
        values["inverse_margin"] = 1 / gamma**2
        values["log_spectral_over_margin"] = log_r + math.log(data_norm / (m * gamma))

    folded = fold_batch_norm(final, example)
    chosen = np.sort(np.random.default_rng(settings.seed).permutation(m)[: settings.search_images])
    index = torch.as_tensor(chosen, device=device)
    data = SearchData(inputs[index], labels[index])
    with timer("pacbayes"):
        sigma, sigma_mag = (
            pac_bayes_sigma(folded, data, magnitude_aware=aware, draws=settings.noise_draws,
                            steps=settings.bisection_steps, seed=settings.seed)
            for aware in (False, True)
        )  # fmt: skip
    with timer("sharpness"):
        alpha, alpha_mag = (
            sharpness_alpha(folded, data, magnitude_aware=aware, steps=settings.bisection_steps,
                            ascent_steps=settings.ascent_steps, seed=settings.seed)
            for aware in (False, True)
        )  # fmt: skip
    with torch.no_grad():
        moved = sum(
            float((w - w0).square().sum())
            for w, w0 in zip(
                folded.parameters(), fold_batch_norm(initial, example).parameters(), strict=True
            )
        )
    values["pacbayes_flatness"] = _inverse_square(sigma)
    if sigma == 0:
        values["pacbayes_bound"] = math.inf
    elif sigma < math.inf:  # beyond the search's range: no bound
        values["pacbayes_bound"] = moved / (4 * sigma**2) + math.log(m / sigma) + 10
    values["pacbayes_mag_flatness"] = _inverse_square(sigma_mag)
    values["sharpness"] = _inverse_square(alpha)
    values["sharpness_mag"] = _inverse_square(alpha_mag)
    values.update(cross_entropy_steps(pd.read_csv(run_dir / "steps.csv")))

    unknown = set(values) - set(MEASURES)
    assert not unknown, f"measures missing from the catalog: {unknown}"
    measures = {name: values.get(name, math.nan) for name in MEASURES}
    search = {
        "train_images": m, "train_accuracy": accuracy, "margin_10th_percentile": gamma,
        "search_images": len(chosen), "sigma": sigma, "sigma_mag": sigma_mag, "alpha": alpha,
        "alpha_mag": alpha_mag, **{f"seconds_{k}": v for k, v in timer.seconds.items()},
    }  # fmt: skip
    margins = pd.DataFrame({
        "example": np.arange(m), "label": labels.cpu().numpy(), "margin": margins.numpy(),
        "normalized_margin": normalized.numpy(),
    })  # fmt: skip
    log.info("%s: %s", run_dir, timer.seconds)
    return measures, search, margins


def _inverse_square(scale: float) -> float:
    """1 / scale^2: infinite where the search found no scale small enough (even the
    magnitude-aware floor eps moves accuracy too far), 0 where none large enough."""
    return scale**-2 if scale > 0 else math.inf


def measure_variant(run_dirs, variant, settings: MeasureSettings, threads: int = 1) -> dict:
    """Every run's measures (one row per run and measure), searches (one row per run) and
    margins (one row per run and training example): the runs in `run_dirs`, all trained on
    `variant`, whose file is read once."""
    device = setup_device(settings.device, threads)
    train = read_dataset(variant).train
    tables = {"measures": [], "searches": [], "margins": []}
    for run_dir in map(Path, run_dirs):
        keys = dataclasses.asdict(RunKey.from_path(run_dir))
        config = json.loads((run_dir / "summary.json").read_text())["config"]
        inputs, labels = training_inputs(train, config, device)
        measures, search, margins = measure_run(run_dir, inputs, labels, settings)
        tables["measures"] += [{**keys, "measure": k, "value": v} for k, v in measures.items()]
        tables["searches"].append({**keys, **search})
        tables["margins"].append(margins.assign(**keys)[[*keys, *margins.columns]])
    return {
        "measures": pd.DataFrame(tables["measures"]),
        "searches": pd.DataFrame(tables["searches"]),
        "margins": pd.concat(tables["margins"]),
    }


def write_variant_measures(run_dirs, variant, out: dict, settings, threads: int = 1) -> None:
    """measure_variant's tables to the CSV paths in `out`, each whole or not at all."""
    for name, table in measure_variant(run_dirs, variant, settings, threads).items():
        with atomic_path(out[name]) as tmp:
            table.to_csv(tmp, index=False)
