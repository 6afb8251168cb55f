"""Sparsity-inducing penalties, added to the training loss's gradients by the pruning callback.

`l1` is the classic recipe's L1 penalty on prunable weights (Han et al., 2015): it pulls unimportant
weights to zero before magnitude pruning removes them. `group_lasso` sums the L2 norms of the hidden
units' groups (Wen et al., 2018, "intrinsic sparse structures"): it pulls whole units to zero before
structured pruning removes them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.pruning.groups import Slot, unit_scores


def l1(model: nn.Module, names: list[str]) -> Tensor:
    """Sum of |w| over the named parameters."""
    params = dict(model.named_parameters())
    return sum(params[name].abs().sum() for name in names)


def group_lasso(model: nn.Module, slots: list[Slot], eps: float = 1e-12) -> Tensor:
    """Sum over hidden units of the L2 norm of each unit's group of weights."""
    squares = {name: p.pow(2) for name, p in model.named_parameters()}
    return sum(torch.sqrt(unit_scores(s, squares) + eps).sum() for s in slots)
