"""A trained network as the measures see it (Jiang et al. 2020, appendix): batch norm folded
into the convolution or linear layer it follows, and each such layer's weight as a matrix,
convolution kernels reshaped to (out, in*k*k), biases left out.

The layers are found by running the network once (forward hooks), not from its code: a batch
norm is folded into the layer whose output it reads, and the layers come in the order the
forward pass uses them. So a user's model needs no annotation.
"""

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _forward_trace(model: nn.Module, example: torch.Tensor) -> list[tuple]:
    """(name, module, input, its version, output, its version) of every weighted layer and batch
    norm, in the order one eval-mode forward pass of `example` calls them. The tensors are kept,
    so that identity and version tell which layer's unchanged output a batch norm reads."""
    calls = []
    wanted = {m: n for n, m in model.named_modules() if isinstance(m, WEIGHTED + BATCH_NORMS)}

    def record(module, inputs, output):
        # versions: an in-place op between a layer and a batch norm changes its output's
        x = inputs[0]
        calls.append((wanted[module], module, x, x._version, output, output._version))

    hooks = [m.register_forward_hook(record) for m in wanted]
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def fold_batch_norm(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of `model` in eval mode in which every batch norm that reads a convolution's or a
    linear layer's output is folded into that layer's weight and bias (the layer then computes
    what the pair computed in eval mode) and replaced with nn.Identity."""
    folded = copy.deepcopy(model).eval()
    producers = {}
    for name, module, read, read_version, wrote, wrote_version in _forward_trace(folded, example):
        if isinstance(module, WEIGHTED):
            producers[id(wrote)] = (name, wrote_version)
        elif producers.get(id(read), (None, None))[1] == read_version:
            layer, _ = producers.pop(id(read))
            fuse = (
                fuse_linear_bn_eval
                if isinstance(folded.get_submodule(layer), nn.Linear)
                else (fuse_conv_bn_eval)
            )
            folded.set_submodule(layer, fuse(folded.get_submodule(layer), module))
            folded.set_submodule(name, nn.Identity())
    with torch.no_grad():
        if not torch.allclose(folded(example), model.eval()(example), rtol=1e-3, atol=1e-4):
            raise ValueError(
                f"{type(model).__name__}: folding its batch norms changed its output (a layer's "
                "output read by a batch norm and by something else?); rethink.measures.layers "
                "folds a batch norm only into the layer whose output it alone reads"
            )
    return folded


def weighted_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The convolutions and linear layers of `model`, in the order its forward pass calls them
    (each once)."""
    seen = {}
    for _, module, *_ in _forward_trace(model, example):
        if isinstance(module, WEIGHTED):
            seen.setdefault(module, None)
    return list(seen)


def weight_matrices(model: nn.Module, example: torch.Tensor) -> list[torch.Tensor]:
    """Each weighted layer's weight as a float64 matrix (out, fan-in), after folding batch norm:
    a convolution's kernel (out, in, k, k) as (out, in*k*k). Biases are left out."""
    layers = weighted_layers(fold_batch_norm(model, example), example)
    return [layer.weight.detach().flatten(1).double() for layer in layers]
