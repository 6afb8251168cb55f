"""Pareto maths on result tables: which trials are non-dominated, and how much of the plane they cover.

Objectives are (column, direction) pairs; maths runs on values oriented so that larger is better, tables
keep every metric in its own units. Pure functions of pandas frames; no MLflow, no Optuna.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

Objective = tuple[str, str]  # (column, "max" | "min")


def oriented(frame: pd.DataFrame, objectives: Sequence[Objective]) -> np.ndarray:
    """(n, k) array of the objectives, negated where smaller is better, so larger is always better."""
    return np.column_stack([frame[c].astype(float) * (1.0 if d == "max" else -1.0) for c, d in objectives])


def non_dominated(frame: pd.DataFrame, objectives: Sequence[Objective]) -> pd.Series:
    """True for each row that no other row beats in one objective while matching or beating it in all."""
    points = oriented(frame, objectives)  # (n, k)
    at_least = (points[None, :, :] >= points[:, None, :]).all(axis=2)  # [i, j]: j is as good as i everywhere
    better = (points[None, :, :] > points[:, None, :]).any(axis=2)  # [i, j]: j beats i somewhere
    return pd.Series(~(at_least & better).any(axis=1), index=frame.index, name="pareto")


def hypervolume(frame: pd.DataFrame, objectives: Sequence[Objective], reference: Sequence[float]) -> float:
    """Area dominated by the rows and bounded below by `reference` (in oriented units), two objectives."""
    if len(objectives) != 2:
        raise ValueError("hypervolume is implemented for two objectives")
    points = oriented(frame, objectives)
    points = points[(points > np.asarray(reference)).all(axis=1)]
    if not len(points):
        return 0.0
    points = points[np.argsort(-points[:, 0])]  # best first objective first
    area, best_second = 0.0, reference[1]
    for x, y in points:  # sweep: each point adds the strip above the best second objective so far
        if y > best_second:
            area += (x - reference[0]) * (y - best_second)
            best_second = y
    return float(area)


def reference_quality(values: pd.Series, direction: str, margin: float = 0.01) -> float:
    """The worst value, moved a further `margin` of the values' range (1e-3 if they are all equal) the worse way,
    so that even the worst trial adds a strip of hypervolume."""
    values = values.astype(float)
    span = float(values.max() - values.min())
    step = margin * span if span > 0 else 1e-3
    return float(values.min() - step) if direction == "max" else float(values.max() + step)
