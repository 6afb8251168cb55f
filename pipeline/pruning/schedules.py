"""Schedules: a registry of pure functions giving the target sparsity after round r of n.

Every schedule ends at `amount` after the last round; round 0 is the dense model (sparsity 0).
For AGP per epoch, run one retrain epoch per round (`pruning.retrain_epochs=1`).
"""

from __future__ import annotations

from collections.abc import Callable

Schedule = Callable[[int, int, float], float]


def oneshot(r: int, n: int, amount: float) -> float:
    """Reach the target in the first round; later rounds only retrain."""
    return amount if r >= 1 else 0.0


def iterative(r: int, n: int, amount: float) -> float:
    """Each round removes the same share of what remains: density (1 - amount) ** (r / n)."""
    return 1.0 - (1.0 - amount) ** (min(r, n) / n)


def agp(r: int, n: int, amount: float) -> float:
    """Automated gradual pruning (Zhu & Gupta, 2017): fast at first, slower as fewer weights remain."""
    return amount * (1.0 - (1.0 - min(r, n) / n) ** 3)


def constant(r: int, n: int, amount: float) -> float:
    """The same number of weights every round: sparsity grows linearly to the target."""
    return amount * min(r, n) / n


SCHEDULES: dict[str, Schedule] = {
    "oneshot": oneshot,
    "iterative": iterative,
    "agp": agp,
    "constant": constant,
}
