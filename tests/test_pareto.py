"""Pareto sets and hypervolume against brute-force definitions."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import pareto

OBJECTIVES = [("sparsity", "max"), ("val_rmse", "min")]
values = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=25)


def frame(points) -> pd.DataFrame:
    return pd.DataFrame(points, columns=["sparsity", "val_rmse"]).astype(float)


@settings(max_examples=200, deadline=None)
@given(values)
def test_non_dominated_matches_the_definition(points) -> None:
    df = frame(points)
    expected = [not any(b[0] >= a[0] and b[1] <= a[1] and (b[0] > a[0] or b[1] < a[1]) for b in points) for a in points]
    assert pareto.non_dominated(df, OBJECTIVES).tolist() == expected


@settings(max_examples=100, deadline=None)
@given(values)
def test_hypervolume_equals_the_counted_grid_area(points) -> None:
    df = frame(points)
    oriented = [(s, -r) for s, r in points]  # larger is better in both
    reference = (-1.0, -7.0)
    # integer points: a unit cell counts when its centre is dominated by some point
    cells = sum(
        any(cx + 0.5 < a and cy + 0.5 < b for a, b in oriented)
        for cx, cy in itertools.product(range(-1, 7), range(-7, 1))
    )
    assert pareto.hypervolume(df, OBJECTIVES, reference) == pytest.approx(cells)


def test_hypervolume_of_one_point_and_of_nothing() -> None:
    df = frame([(3, 2)])
    assert pareto.hypervolume(df, OBJECTIVES, (0.0, -5.0)) == pytest.approx(3 * 3)
    assert pareto.hypervolume(df, OBJECTIVES, (4.0, -5.0)) == 0.0


def test_reference_quality_lies_one_percent_of_the_range_past_the_worst() -> None:
    assert pareto.reference_quality(pd.Series([0.2, 0.5, 0.4]), "max") == pytest.approx(0.2 - 0.003)
    assert pareto.reference_quality(pd.Series([1.0, 3.0]), "min") == pytest.approx(3.0 + 0.02)
    assert pareto.reference_quality(pd.Series([0.5, 0.5]), "max") == pytest.approx(0.499)  # no range: 1e-3
