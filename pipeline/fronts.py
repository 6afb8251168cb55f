"""The Pareto front of a study, read from its trial runs in MLflow: table, tags, plot, hypervolume.

Rows are the study's finished trial runs; the front is non-dominated on (validation quality, sparsity),
test quality reported beside. Refreshing it logs `pareto.csv`, `pareto.png` and `hypervolume`
(step = finished trials) on the search's parent run and tags exactly the front's runs `pareto=true`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipeline import pareto, plots, tracking

if TYPE_CHECKING:
    from pipeline.runner import RunResult

ROLE = "pipeline.role"


def front(client: tracking.Client, parent: str, study: str, metric: str, direction: str) -> pd.DataFrame:
    """One row per finished trial run of the study, with its final metrics and whether it is on the front."""
    rows = tracking.study_runs(client, parent, study, ROLE, [f"val_{metric}", f"test_{metric}"])
    columns = ["trial", "run_id", "sparsity", f"val_{metric}", f"test_{metric}", "nonzero_params", "tagged"]
    table = pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)
    table = table.sort_values("trial").reset_index(drop=True)
    table["pareto"] = pareto.non_dominated(table, [("sparsity", "max"), (f"val_{metric}", direction)])
    return table


def refresh(client: tracking.Client, parent: str, study: str, dense: RunResult) -> pd.DataFrame:
    """Recompute the study's front from its trial runs; log the table, the plot, the hypervolume and the tags."""
    metric, direction = dense.metric, dense.direction
    table = front(client, parent, study, metric, direction)
    if table.empty:
        return table
    for row in table.itertuples():
        if row.tagged != str(bool(row.pareto)).lower():  # only the tags that change
            tracking.set_tags(client, row.run_id, {"pareto": str(bool(row.pareto)).lower()})
    # Reference point (oriented units): no sparsity, and quality one unit worse than dense.
    best = dense.metrics[f"val_{metric}"]
    reference = (0.0, best - 1.0 if direction == "max" else -(best + 1.0))
    volume = pareto.hypervolume(table, [("sparsity", "max"), (f"val_{metric}", direction)], reference)
    tracking.log_metrics(client, parent, {"hypervolume": volume}, step=len(table))
    with tempfile.TemporaryDirectory() as tmp:
        table.drop(columns=["tagged"]).to_csv(Path(tmp) / "pareto.csv", index=False)
        plots.front_plot(table, f"val_{metric}", Path(tmp) / "pareto.png", best, f"Pareto front of {study}")
        tracking.log_folder(client, parent, tmp)
    return table


def summary(table: pd.DataFrame, metric: str, uri: str, parent: str, study: str) -> None:
    """The front as a table, where the runs are, and how to look at them."""
    columns = ["trial", "sparsity", f"val_{metric}", f"test_{metric}", "pruning.method", "pruning.granularity"]
    front_rows = table[table["pareto"]].sort_values("sparsity")
    print("\nPareto front:" if len(front_rows) else "\nno finished trial: the study has no front yet")
    if len(front_rows):
        print(front_rows[columns].to_string(index=False))
    shown = tracking.redact(uri)
    print(f"\nsearch run {parent} in {shown}: pareto.csv, pareto.png, hypervolume")
    print(f"open it with: mlflow ui --backend-store-uri {shown}")
    print(f"front models: registered model {study!r}, aliases front-1 (least sparse) .. front-N (sparsest);")
    print(f"  load one with pipeline.tracking.load_registered({study!r}, 'front-1', {shown!r})")
