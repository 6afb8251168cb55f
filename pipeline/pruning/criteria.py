"""Importance criteria: a registry of pure functions from a weight (and its gradient) to a score.

A higher score means more important; the lowest-scoring weights are pruned first.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

Criterion = Callable[[Tensor, Tensor | None], Tensor]


def magnitude(weight: Tensor, grad: Tensor | None = None) -> Tensor:
    """|w|: the classic magnitude (L1) criterion."""
    return weight.detach().abs()


CRITERIA: dict[str, Criterion] = {
    "magnitude": magnitude,
}
