"""Compare the Pareto fronts of searches across tracking stores: one table of every trial, the combined front,
and each source's hypervolume against one common reference point; a CSV, an overlay plot, optionally a run.

A source is `URI#NAME`: NAME is an experiment name, or the run id of a search's parent run (then only that
search's trials). Rows are FINISHED trial runs. Tasks score quality with different metrics and two metrics
cannot share a front, so fronts and reference points are computed per metric.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import pareto, plots, tracking
from pipeline.errors import PipelineError, StoreError
from pipeline.fronts import ROLE
from pipeline.metrics import METRICS

# Which way each quality metric improves. A run names its quality metric in tag `pipeline.metric`.
DIRECTIONS = {name: metric.direction for name, metric in METRICS.items()}
RECIPE = ["task.name", "model.cell", "model.hidden_size", "model.num_layers", "model.bidirectional"]
CONTRACT = ["sparsity", "val_{}", "test_{}", "nonzero_params", "model_bytes"]  # logged by every round
MEASURES = ["sparsity", "val_quality", "test_quality", "nonzero_params", "model_bytes", "hidden_units"]
FILES = ["compare.csv", "hypervolume.csv", "fronts.png"]


@dataclass(frozen=True)
class Source:
    """Where a search's runs live: a tracking URI, and an experiment name or a parent run id."""

    uri: str
    name: str

    def __str__(self) -> str:
        return tracking.redact(f"{self.uri}#{self.name}")


def parse_source(text: str) -> Source:
    """`URI#NAME` -> Source; a PipelineError naming the text otherwise."""
    uri, mark, name = text.rpartition("#")
    if not (mark and uri and name):
        shown = tracking.redact(text)
        raise PipelineError(f"source {shown!r}: expected URI#NAME (NAME: an experiment or a search's parent run id)")
    return Source(uri, name)


def label(source: str) -> str:
    """A source as a valid part of an MLflow metric name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", source).strip("_.")


def objectives(metric: str) -> list[pareto.Objective]:
    """The two objectives of a front: sparsity up, validation quality its metric's way."""
    return [("sparsity", "max"), ("val_quality", DIRECTIONS[metric])]


# --- reading -----------------------------------------------------------------------------------------


def read(source: Source) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The source's trial runs, one row each, and its dense runs (the same columns); StoreError if unreadable."""
    runs = tracking.source_runs(source.uri, source.name)
    rows = [_row(source, run) for run in runs if run["tags"].get(ROLE) in ("trial", "dense")]
    trials = pd.DataFrame([r for r in rows if r["role"] == "trial"])
    if trials.empty:
        raise StoreError(f"no finished trial runs (tag {ROLE}=trial) among {len(runs)} finished runs")
    dense = pd.DataFrame([r for r in rows if r["role"] == "dense"], columns=trials.columns)
    return trials.sort_values("trial").drop(columns="role"), dense.drop(columns="role")


def _row(source: Source, run: dict[str, Any]) -> dict[str, Any]:
    metrics, params = run["metrics"], {key: _cast(value) for key, value in run["params"].items()}
    metric = _metric(run)
    missing = [key.format(metric) for key in CONTRACT if key.format(metric) not in metrics]
    if missing:
        raise StoreError(f"run {run['run_id']} lacks the contract metrics {missing}")
    trial = run["tags"].get("optuna.trial")
    return {
        "source": str(source),
        "run_id": run["run_id"],
        "role": run["tags"][ROLE],
        "trial": int(trial) if trial is not None else None,
        "metric": metric,
        **{key: params[key] for key in sorted(params) if key.startswith("pruning.")},
        **{key: params.get(key) for key in RECIPE},
        "sparsity": metrics["sparsity"],
        "val_quality": metrics[f"val_{metric}"],
        "test_quality": metrics[f"test_{metric}"],
        "nonzero_params": metrics["nonzero_params"],
        "model_bytes": metrics["model_bytes"],
        # structured runs log living units; otherwise every unit of every layer and direction lives
        "hidden_units": metrics.get("hidden_units", _units(params)),
    }


def _metric(run: dict[str, Any]) -> str:
    """The run's quality metric: its tag `pipeline.metric`, or for runs without it, found from its keys."""
    tagged = run["tags"].get("pipeline.metric")
    found = [tagged] if tagged in DIRECTIONS else [m for m in DIRECTIONS if f"val_{m}" in run["metrics"]]
    if not found:
        raise StoreError(f"run {run['run_id']} lacks the contract metrics: no val_<metric> of {sorted(DIRECTIONS)}")
    return found[0]


def _units(params: dict[str, Any]) -> int | None:
    size, layers, both = (params.get(f"model.{k}") for k in ("hidden_size", "num_layers", "bidirectional"))
    return size * layers * (2 if both else 1) if isinstance(size, int) and isinstance(layers, int) else None


def _cast(text: str) -> Any:
    """A param back from MLflow, which stores every value as text ("" for None)."""
    if text in ("", "None"):
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_all(sources: Sequence[Source]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials and dense runs of every readable source; a warning for each one that is not."""
    trials, dense = [], []
    for source in sources:
        try:
            found, baseline = read(source)
        except PipelineError as err:
            print(f"warning: {source}: {err}", file=sys.stderr, flush=True)
            continue
        print(f"read {len(found)} trials from {source}", flush=True)
        trials.append(found)
        dense += [baseline] if len(baseline) else []
    if not trials:
        raise PipelineError(f"no source could be read: {', '.join(map(str, sources))}")
    no_dense = trials[0][:0]  # the same columns, no rows
    return pd.concat(trials, ignore_index=True), pd.concat(dense, ignore_index=True) if dense else no_dense


# --- comparing ---------------------------------------------------------------------------------------


def fronts(table: pd.DataFrame) -> pd.DataFrame:
    """The table with `pareto_combined` (on its metric's front over all sources) and `pareto_source`."""
    table = table.reset_index(drop=True)
    table["pareto_combined"] = table["pareto_source"] = False
    for metric, rows in table.groupby("metric"):
        table.loc[rows.index, "pareto_combined"] = pareto.non_dominated(rows, objectives(metric))
        for _, part in rows.groupby("source"):
            table.loc[part.index, "pareto_source"] = pareto.non_dominated(part, objectives(metric))
    recipe = sorted(c for c in table if c.startswith("pruning.")) + RECIPE
    return table[["source", "run_id", "trial", "metric", *recipe, *MEASURES, "pareto_combined", "pareto_source"]]


def references(
    table: pd.DataFrame, dense: pd.DataFrame, fixed: tuple[float, float] | None = None
) -> dict[str, tuple[float, float]]:
    """Per metric, the common reference point (sparsity, validation quality in the metric's units): sparsity 0
    and the worst quality of every trial and dense run compared, moved 1% of the range further; or `fixed`."""
    values = pd.concat([frame[["metric", "val_quality"]] for frame in (table, dense) if len(frame)])
    return {
        metric: fixed or (0.0, pareto.reference_quality(rows["val_quality"], DIRECTIONS[metric]))
        for metric, rows in values.groupby("metric")
    }


def hypervolumes(table: pd.DataFrame, refs: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """One row per source and metric: trials, front sizes, hypervolume and the reference it was measured from."""
    rows = []
    for (source, metric), part in table.groupby(["source", "metric"], sort=False):
        sparsity, quality = refs[metric]
        oriented = (sparsity, quality if DIRECTIONS[metric] == "max" else -quality)  # as pareto's maths sees it
        volume = pareto.hypervolume(part, objectives(metric), oriented)
        sizes = {"front": int(part["pareto_source"].sum()), "on_combined_front": int(part["pareto_combined"].sum())}
        rows.append(
            {
                "source": source,
                "metric": metric,
                "trials": len(part),
                **sizes,
                "hypervolume": volume,
                "reference_sparsity": sparsity,
                "reference_quality": quality,
            }
        )
    return pd.DataFrame(rows)


def run(
    texts: Sequence[str], out: Path, log_to: str | None = None, reference: tuple[float, float] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare the sources; write compare.csv, hypervolume.csv and fronts.png to `out`; log them to `log_to`."""
    sources = list(dict.fromkeys(parse_source(text) for text in texts))  # malformed: nothing is read
    if log_to:
        tracking.check(log_to, "--log-to")  # a store that cannot take the result fails before any work
    trials, dense = read_all(sources)
    table = fronts(trials)
    refs = references(table, dense, reference)
    summary = hypervolumes(table, refs)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "compare.csv", index=False)
    summary.to_csv(out / "hypervolume.csv", index=False)
    plots.overlay_plot(table, out / "fronts.png", refs)
    show(table, summary, out)
    if log_to:
        log(log_to, out, summary, refs)
    return table, summary


def show(table: pd.DataFrame, summary: pd.DataFrame, out: Path) -> None:
    """Print the hypervolumes with their reference points, the combined front, and where the files are."""
    print("\nhypervolume per source (reference point: sparsity, validation quality in the metric's units):")
    print(summary.to_string(index=False))
    front = table[table["pareto_combined"]].sort_values(["metric", "sparsity"])
    columns = ["source", "trial", "metric", "sparsity", "val_quality", "test_quality", "pruning.method"]
    print("\ncombined front:")
    print(front[[c for c in columns if c in front]].to_string(index=False))
    print(f"\nwrote {', '.join(str(out / name) for name in FILES)}")


def log(uri: str, out: Path, summary: pd.DataFrame, refs: dict[str, tuple[float, float]]) -> str:
    """Log the comparison as a run of experiment `compare`: its files, `hypervolume/<source>`, the reference."""
    params = {f"reference.{metric}.sparsity": point[0] for metric, point in refs.items()}
    params |= {f"reference.{metric}.quality": point[1] for metric, point in refs.items()}
    several = summary["source"].duplicated(keep=False)  # a source with two metrics: one key per metric
    metrics = {
        f"hypervolume/{label(row.source)}" + (f"/{row.metric}" if twice else ""): row.hypervolume
        for row, twice in zip(summary.itertuples(), several, strict=True)
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in FILES:  # only the comparison's files, whatever else `out` holds
            shutil.copy(out / name, tmp)
        with tracking.open_run(uri, "compare", params, tags={"pipeline.command": "compare"}) as logged:
            tracking.log_folder(logged.client, logged.run_id, tmp)
            tracking.log_metrics(logged.client, logged.run_id, metrics)
    print(f"logged the comparison as run {logged.run_id} in {tracking.redact(uri)}")
    return logged.run_id
