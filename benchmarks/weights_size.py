"""Bytes each run's weights.safetensors takes (initial and final weights, rethink.models.weights),
per registered model on the inputs each study gives it: written to a temporary file and measured.

Usage: python benchmarks/weights_size.py
"""

import tempfile
from pathlib import Path

import pandas as pd

from rethink.models import MODELS, build_model, count_parameters
from rethink.models.weights import save_weights

# (study, input shape after the crop, classes) of the models that take 28x28 inputs, and ImageNet's
INPUTS = {"mnist5k": ((1, 28, 28), 10), "cifar10": ((3, 28, 28), 10)}
IMAGENET = ((3, 299, 299), 1000)


def measure(name: str, study: str, shape, classes: int, folder: Path) -> dict:
    model = build_model(name, shape, classes)
    path = folder / f"{name}-{study}.safetensors"
    spec = {"model": name, "input_shape": list(shape), "n_classes": classes, "dropout": 0.0}
    save_weights(path, model, model, spec)
    size = path.stat().st_size
    return {"model": name, "study": study, "parameters": count_parameters(model),
            "bytes": size, "MB": round(size / 1e6, 2)}  # fmt: skip


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, spec in MODELS.items():
            inputs = INPUTS if spec.min_size <= 28 else {"imagenet": IMAGENET}
            for study, (shape, classes) in inputs.items():
                rows.append(measure(name, study, shape, classes, Path(folder)))
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
