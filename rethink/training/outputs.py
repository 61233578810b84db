"""A run's outputs, all or none: history.csv (one row per epoch), steps.csv (the training loss
in blocks of steps), the observers' files and summary.json last, whose presence means the run
finished."""

import dataclasses
import json
import logging
import os
from pathlib import Path

import pandas as pd
import torch

from rethink.files import write_together
from rethink.models import count_parameters
from rethink.training.settings import RunConfig

log = logging.getLogger(__name__)

# Accuracies are top-1 unless named top5 (empty where a dataset has 5 classes or fewer); the
# training ones are over the training set, or over `train_eval_images` of it where set.
HISTORY_COLUMNS = [
    "epoch", "step", "lr", "train_loss", "train_acc", "train_top5", "test_loss", "test_acc",
    "test_top5", "seconds",
]  # fmt: skip
# The same measured with the moving average of the weights, where a run keeps one
# (training.average_decay).
AVERAGED_COLUMNS = [
    f"averaged_{split}_{metric}"
    for split in ("train", "test")
    for metric in ("loss", "acc", "top5")
]


def write_outputs(
    run_dir: Path,
    config: RunConfig,
    state: dict,
    model,
    execution: dict,
    writers: dict,
    sizes: dict,
) -> dict:
    """history.csv, steps.csv, the observers' `writers` (path -> write(temporary path)) and
    summary.json, all or none, for a run on `sizes` ({"train": n, "test": n} images); returns
    the summary."""
    averaged = config.average_decay is not None
    history = pd.DataFrame(state["history"], columns=HISTORY_COLUMNS + averaged * AVERAGED_COLUMNS)
    losses = torch.tensor(state["step_losses"], dtype=torch.float64)
    block = config.loss_block_steps
    ends = list(range(block, len(losses) + 1, block)) or [len(losses)]
    steps = pd.DataFrame(
        {"step": ends, "train_loss": [losses[end - block : end].mean().item() for end in ends]}
    )
    last = history.iloc[-1]
    fitted = bool(state["fitted"])

    summary = {
        "train_acc": float(last.train_acc),
        "test_acc": float(last.test_acc),
        "best_test_acc": float(history.test_acc.max()),
        "train_top5": json_number(last.train_top5),
        "test_top5": json_number(last.test_top5),
        "best_test_top5": json_number(history.test_top5.max()),
        **(averaged_summary(history) if averaged else {}),
        "fitted": fitted,
        # the first epoch that fitted: under a fixed budget, training goes on after it
        "steps_to_fit": state.get("fitted_step") if fitted else None,
        "epochs": int(last.epoch),
        "steps": int(last.step),
        "seconds": float(last.seconds),
        "params": count_parameters(model),
        "train_images": sizes["train"],  # what the accuracies are out of
        "test_images": sizes["test"],
        **execution,  # device, the precision it resolved to, compilation, processes
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch": torch.__version__,
        "config_hash": config.config_hash(),
        "config": dataclasses.asdict(config),
    }
    write_together({
        run_dir / "history.csv": lambda tmp: history.to_csv(tmp, index=False),
        run_dir / "steps.csv": lambda tmp: steps.to_csv(tmp, index=False),
        **writers,
        run_dir / "summary.json": lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"),
    })  # fmt: skip
    log.info(
        "%s: %s after %d epochs (%d steps, %.1f s): train %.4f, test %.4f",
        run_dir, "fitted" if fitted else "NOT fitted", summary["epochs"], summary["steps"],
        summary["seconds"], summary["train_acc"], summary["test_acc"],
    )  # fmt: skip
    return summary


def averaged_summary(history: pd.DataFrame) -> dict:
    """The moving average's accuracies at the last epoch, and its best test accuracies."""
    last, summary = history.iloc[-1], {}
    for metric in ("acc", "top5"):
        for split in ("train", "test"):
            summary[f"averaged_{split}_{metric}"] = json_number(last[f"averaged_{split}_{metric}"])
        summary[f"best_averaged_test_{metric}"] = json_number(
            history[f"averaged_test_{metric}"].max()
        )
    return summary


def json_number(value) -> float | None:
    """A float, or None for NaN (no top-5), which is not JSON."""
    return None if pd.isna(value) else float(value)
