"""Importance criteria: a registry of pure functions from a weight (and its gradient) to a score.

A higher score means more important; the lowest-scoring weights or units are pruned first. Gradient
criteria receive `grad` = the mean of |dL/dw| over a few training batches, so `taylor` is the mean
first-order Taylor estimate of the loss change |w * dL/dw| per batch (Molchanov et al., 2017).
A unit's score aggregates its group's weight scores: a sum (L1-style), or for `l2` the L2 norm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Criterion:
    """How to score one weight tensor, whether that needs gradients, and how a unit aggregates scores."""

    score: Callable[[Tensor, Tensor | None, torch.Generator], Tensor]
    needs_grad: bool = False
    reduce: str = "sum"  # "sum" or "l2", over a hidden unit's group


def magnitude(weight: Tensor, grad: Tensor | None, generator: torch.Generator) -> Tensor:
    """|w|: the classic magnitude (L1) criterion."""
    return weight.detach().abs()


def taylor(weight: Tensor, grad: Tensor | None, generator: torch.Generator) -> Tensor:
    """|w| * mean |dL/dw|: the first-order Taylor estimate of the loss change when w is removed."""
    return weight.detach().abs() * grad


def gradient(weight: Tensor, grad: Tensor | None, generator: torch.Generator) -> Tensor:
    """mean |dL/dw|: how sensitive the loss is to the weight."""
    return grad.clone()


def random(weight: Tensor, grad: Tensor | None, generator: torch.Generator) -> Tensor:
    """Uniform noise: the control every other criterion should beat."""
    return torch.rand(weight.shape, generator=generator).to(weight.device)


CRITERIA: dict[str, Criterion] = {
    "magnitude": Criterion(magnitude),
    "l2": Criterion(magnitude, reduce="l2"),  # equals magnitude for single weights; a unit's L2 norm for groups
    "taylor": Criterion(taylor, needs_grad=True),
    "gradient": Criterion(gradient, needs_grad=True),
    "random": Criterion(random),
}


def mean_abs_grads(
    model: nn.Module, loss: Callable[[Any], Tensor], batches: Iterable[Any], names: list[str]
) -> dict[str, Tensor]:
    """mean over batches of |dL/dw| for the named parameters; leaves the model's .grad cleared."""
    params = dict(model.named_parameters())
    total = {name: torch.zeros_like(params[name]) for name in names}
    count = 0
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss(batch).backward()
        for name in names:
            total[name] += params[name].grad.abs()
        count += 1
    model.zero_grad(set_to_none=True)
    return {name: t / max(count, 1) for name, t in total.items()}
