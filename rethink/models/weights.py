"""A run's initial and final weights, kept in its folder as safetensors (no pickle: loading runs
no code), and loaded back into the registered model with one call:

    from rethink.models.weights import load_run_model
    model = load_run_model("results/runs/mnist5k/true/mlp1x512/none/seed0")  # trained
    start = load_run_model("results/runs/mnist5k/true/mlp1x512/none/seed0", "initial")

The file holds every tensor of the model's state dict (batch norm's running statistics too)
under `initial/` and `final/` (and `averaged/`, the moving average of a run that keeps one:
`load_run_model(run_dir, "averaged")`), and in its metadata (key `rethink`, a JSON object) what
rebuilds the model: its registry name, input shape (C, H, W) after the crop, classes, dropout
rate and, where it trained one, its auxiliary head.
"""

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from rethink.models import build_model
from rethink.runs import WEIGHTS_FILE

STATES = ("initial", "final", "averaged")
METADATA_KEY = "rethink"  # what rebuilds the model, as one JSON object


def save_weights(
    path, initial: nn.Module, final: nn.Module, spec: dict, averaged: nn.Module | None = None
) -> None:
    """The models' state dicts to `path` (the average's where there is one), with `spec`
    (model, input_shape, n_classes, dropout, aux_logits) as the file's metadata."""
    models = (initial, final) if averaged is None else (initial, final, averaged)
    tensors = {
        f"{state}/{name}": tensor.detach().cpu().contiguous().clone()  # tied weights: apart
        for state, model in zip(STATES, models, strict=False)
        for name, tensor in model.state_dict().items()
    }
    # One metadata entry: safetensors writes several in no fixed order, and the same run must
    # give the same bytes.
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(spec, sort_keys=True)})


def load_run_model(run_dir: str | Path, which: str = "final", device="cpu") -> nn.Module:
    """The registered model of the run stored in `run_dir`, with its `which` ("initial",
    "final", or "averaged" for a run that kept a moving average) weights, on `device`, in eval
    mode."""
    if which not in STATES:
        raise ValueError(f"which: {which!r}; give one of {', '.join(STATES)}")
    path = Path(run_dir) / WEIGHTS_FILE
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        spec = json.loads(f.metadata()[METADATA_KEY])
        prefix = f"{which}/"
        state = {
            key.removeprefix(prefix): f.get_tensor(key)
            for key in f.keys()
            if key.startswith(prefix)
        }
    if not state:
        raise ValueError(f"{path}: holds no {which} weights (a run keeps an average only with "
                         "training.average_decay)")  # fmt: skip
    head = {"aux_logits": True} if spec.get("aux_logits") else {}
    model = build_model(
        spec["model"], spec["input_shape"], spec["n_classes"], spec["dropout"], **head
    )
    model.load_state_dict(state)
    return model.to(device).eval()


def weights_spec(config, input_shape, n_classes: int) -> dict:
    """What rebuilds a run's model (rethink.training.settings.RunConfig `config`)."""
    return {
        "model": config.model,
        "input_shape": list(input_shape),
        "n_classes": n_classes,
        "dropout": config.regularization.dropout,
        # only where it trained one: earlier runs' files keep their bytes
        **({"aux_logits": True} if config.aux_loss_weight else {}),
    }
