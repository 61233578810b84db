"""What a registered model must do, checked once before a study's first job (the workflow's
onstart; planning imports no torch): build from (input_shape, n_classes, dropout=...) and its
entry's options, and map a batch to n_classes logits, at the study's input size and at the
smallest size its entry declares. Each failure is one line naming the entry and the fix.
"""

import inspect

import torch

from rethink.config import run_config
from rethink.data.checks import FIX, ExtensionError
from rethink.data.datasets import DATASETS
from rethink.models import MODELS, build_model

# Not a count any dataset here has: a model that ignores n_classes cannot pass by chance.
PROBE_CLASSES = 7


def check_model(name: str, channels: int, size: int, aux: bool = False) -> None:
    """Build model `name` for `channels` x `size` x `size` inputs and run two of them (and two
    of its declared smallest size) through it, on the CPU; with `aux`, also its auxiliary head
    in training mode at `size`."""
    spec = MODELS[name]
    what = f"model '{name}' ({spec.builder})"
    try:
        builder = spec.build_function()
    except (ImportError, AttributeError) as err:
        raise ExtensionError(f"{what}: cannot import its builder: {err}; {FIX}") from None
    try:
        inspect.signature(builder).bind((channels, size, size), PROBE_CLASSES, dropout=0.5,
                                        **spec.options)  # fmt: skip
    except TypeError as err:
        raise ExtensionError(
            f"{what}: its builder must take (input_shape, n_classes, dropout=...) and the "
            f"entry's options {spec.options}: {err}; {FIX}"
        ) from None
    for side in dict.fromkeys([size, spec.min_size]):  # the study's size first
        shape = (channels, side, side)
        try:
            model = build_model(name, shape, PROBE_CLASSES, dropout=0.5).eval()
            with torch.no_grad():
                logits = model(torch.zeros(2, *shape))
        except Exception as err:  # a user's code: say which entry failed, and where
            smallest = " (its entry's min_size)" if side == spec.min_size != size else ""
            raise ExtensionError(
                f"{what}: fails on 2 inputs of (C, H, W) = {shape}{smallest}: "
                f"{type(err).__name__}: {err}; {FIX}"
            ) from None
        if aux and side == size:
            _check_aux_head(name, what, (channels, size, size))
        if tuple(logits.shape) != (2, PROBE_CLASSES):
            raise ExtensionError(
                f"{what}: returns outputs of shape {tuple(logits.shape)} for 2 inputs and "
                f"n_classes={PROBE_CLASSES}; its last layer must give n_classes logits per "
                f"input, (2, {PROBE_CLASSES}); {FIX}"
            )


def check_study_models(config: dict, runs) -> None:
    """check_model for every (model, dataset) pair the study's `runs` train, at the input size
    its runs train on: the crop of an in-memory dataset's images, an encoded dataset's own."""
    probes = set()
    for dataset, model, regularizer in set(
        zip(runs.dataset, runs.model, runs.regularizer, strict=True)
    ):
        source, run = DATASETS[dataset], run_config(config, model, regularizer, 0)
        size = source.image_shape[0] if source.encoded else run.crop_size
        probes.add((model, source.image_shape[2], size, bool(run.aux_loss_weight)))
    for probe in sorted(probes):
        check_model(*probe)


def _check_aux_head(name: str, what: str, shape: tuple[int, int, int]) -> None:
    """Training mode with the auxiliary head gives (logits, auxiliary logits)."""
    try:
        model = build_model(name, shape, PROBE_CLASSES, aux_logits=True).train()
        with torch.no_grad():
            outputs = model(torch.zeros(2, *shape))
    except Exception as err:
        raise ExtensionError(
            f"{what}: with its auxiliary head (training.aux_loss_weight), fails on 2 inputs of "
            f"(C, H, W) = {shape}: {type(err).__name__}: {err}; {FIX}"
        ) from None
    shapes = [tuple(o.shape) for o in outputs] if isinstance(outputs, tuple) else None
    if shapes != [(2, PROBE_CLASSES)] * 2:
        raise ExtensionError(
            f"{what}: with its auxiliary head, training mode must give (logits, auxiliary "
            f"logits) of shape (2, {PROBE_CLASSES}) each; gives {shapes or type(outputs)}; {FIX}"
        )
