"""Masks: boolean buffers that live on the model next to the weights they prune.

A mask for parameter `rnn.weight_hh_l0` is the buffer `rnn.weight_hh_l0_mask` (True = kept). Masks are
plain buffers rather than `torch.nn.utils.prune` reparametrisations, so `deepcopy`, `state_dict`
round-trips, `torch.jit.script` and quantization see an ordinary module. Sparsity is read from here only.

Computing a new mask is a pure function of scores (select.py); applying it is done here (`update`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

SUFFIX = "_mask"
Masks = dict[str, Tensor]  # parameter name -> bool tensor of the parameter's shape


def attach(model: nn.Module, names: Iterable[str]) -> None:
    """Register an all-True mask buffer for each named parameter (existing masks are kept)."""
    for name in names:
        owner, attr = _owner(model, name)
        if not hasattr(owner, attr + SUFFIX):
            owner.register_buffer(attr + SUFFIX, torch.ones_like(getattr(owner, attr), dtype=torch.bool))


def read(model: nn.Module) -> Masks:
    """The model's masks, keyed by the name of the parameter each one prunes."""
    return {name: keep for name, _, keep in _pairs(model)}


def _pairs(model: nn.Module) -> list[tuple[str, nn.Parameter, Tensor]]:
    # One walk over parameters and buffers: apply and mask_grads run after every optimizer step.
    params = dict(model.named_parameters())
    return [
        (name[: -len(SUFFIX)], params[name[: -len(SUFFIX)]], buf)
        for name, buf in model.named_buffers()
        if name.endswith(SUFFIX) and name[: -len(SUFFIX)] in params
    ]


def update(model: nn.Module, new: Mapping[str, Tensor]) -> None:
    """Intersect the model's masks with `new` (masks only shrink) and zero the pruned weights."""
    current = read(model)
    for name, keep in new.items():
        current[name].logical_and_(keep.to(current[name].device))
    apply(model)


@torch.no_grad()
def apply(model: nn.Module) -> None:
    """Multiply every mask into its weight, in place (keeps cuDNN's flat weight buffer intact)."""
    for _, param, keep in _pairs(model):
        param.mul_(keep)


def mask_grads(model: nn.Module) -> None:
    """Zero the gradients of pruned weights, so optimizer state never sees them."""
    for _, param, keep in _pairs(model):
        if param.grad is not None:
            param.grad.mul_(keep)


def fold(model: nn.Module) -> dict[str, Tensor]:
    """A plain state_dict with the masks multiplied in and the mask buffers left out."""
    masks = read(model)
    return {
        name: (value * masks[name] if name in masks else value).detach().clone()
        for name, value in model.state_dict().items()
        if not (name.endswith(SUFFIX) and name[: -len(SUFFIX)] in masks)
    }


# --- statistics, all read from the masks -------------------------------------------------------------


def sparsity(masks: Masks) -> float:
    """Share of prunable weights that are pruned."""
    total = sum(m.numel() for m in masks.values())
    return sum(int((~m).sum()) for m in masks.values()) / total if total else 0.0


def nonzero_params(model: nn.Module) -> int:
    """Parameters that are not pruned away (all parameters, prunable or not)."""
    masks = read(model)
    return sum(int(masks[n].sum()) if n in masks else p.numel() for n, p in model.named_parameters())


def model_bytes(model: nn.Module) -> int:
    """Bytes to store the parameters with each masked tensor as a bitmap plus its kept values.

    Dense storage would not change with unstructured pruning; this is the size of the standard
    bitmap-sparse encoding, so it falls as the masks empty.
    """
    masks = read(model)
    total = 0
    for name, p in model.named_parameters():
        if name in masks:
            total += int(masks[name].sum()) * p.element_size() + (p.numel() + 7) // 8
        else:
            total += p.numel() * p.element_size()
    return total


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attr = name.rpartition(".")
    return (model.get_submodule(path) if path else model), attr
