"""A run's checkpoint, at an epoch boundary: the weights, the optimizer's state, the history so
far and each observer's state. No random state: every stream restarts from the seed at each
epoch (rethink.training.seeds), so a resumed run continues exactly, on any device and any number
of processes. A checkpoint is a cache: one that cannot be used is discarded with one warning and
the run starts from scratch; it never stops a run.
"""

import io
import logging
from pathlib import Path

import torch

from rethink.files import atomic_path
from rethink.training.settings import RunConfig

log = logging.getLogger(__name__)

FORMAT = 2  # 1: with random state and history rows by position (before the one loop)


def save_checkpoint(path: Path, config: RunConfig, model, optimizer, state: dict) -> None:
    payload = {
        "format": FORMAT,
        "config_hash": config.config_hash(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "state": state,
    }
    # Serialized in memory first: torch.save on a full disk fails with an unrelated message.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_checkpoint(path: Path, config: RunConfig, model, optimizer) -> dict | None:
    """Load the checkpoint into model and optimizer and return the run's state, or warn in one
    line and return None if it cannot be used (the model may then hold part of it)."""
    try:
        # weights_only: tensors and plain containers, never code from the file
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT:
            raise ValueError(f"written by an earlier version, format {payload.get('format', 1)}")
        if payload["config_hash"] != config.config_hash():
            log.warning("%s: written for another config; starting from scratch", path)
            return None
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        state = payload["state"]
        epoch = state["epoch"]
    except Exception as err:  # a checkpoint is a cache: never let a bad one stop the run
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.warning("%s: cannot resume from it (%s); starting from scratch", path, reason)
        return None
    log.info("%s: resuming after epoch %d", path, epoch)
    return state
