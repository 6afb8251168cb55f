"""Optuna searches the pruning recipe: a multi-objective study of (validation quality, sparsity).

Run tree: the search's parent run; under it one child run trains the dense model (once per search) and
one child run per trial prunes a copy of it with the trial's recipe, logging every round. After every
finished trial the parent's `pareto.csv`, `pareto.png` and `hypervolume` (step = finished trials) are
refreshed from the child runs, and tag `pareto=true` marks exactly the non-dominated trials.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from mlflow.tracking import MlflowClient

from pipeline import pareto, plots, runner, tracking
from pipeline.config import Config, derive

ROLE = "pipeline.role"


def storage(cfg: Config) -> optuna.storages.BaseStorage | str:
    """`search.storage` if set, else a journal file next to the default MLflow store."""
    if cfg.search.storage:
        return cfg.search.storage
    backend = optuna.storages.journal.JournalFileBackend(str(Path.cwd() / "optuna.journal"))
    return optuna.storages.JournalStorage(backend)


def suggest(trial: optuna.Trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One value per search-space entry: a choice, an int range or a float range."""
    values = {}
    for key, spec in space.items():
        if "choices" in spec:
            values[key] = trial.suggest_categorical(key, spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            values[key] = trial.suggest_int(key, spec["low"], spec["high"], log=spec.get("log", False))
        else:
            values[key] = trial.suggest_float(key, spec["low"], spec["high"], log=spec.get("log", False))
    return values


def front(client: MlflowClient, experiment_id: str, study: str, metric: str, direction: str) -> pd.DataFrame:
    """One row per finished trial run of the study, with its final metrics and whether it is on the front."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`optuna.study` = '{study}' and tags.`{ROLE}` = 'trial' and status = 'FINISHED'",
    )
    rows = [
        {
            "trial": int(r.data.tags["optuna.trial"]),
            "run_id": r.info.run_id,
            "sparsity": r.data.metrics["sparsity"],
            f"val_{metric}": r.data.metrics[f"val_{metric}"],
            f"test_{metric}": r.data.metrics[f"test_{metric}"],
            "nonzero_params": r.data.metrics["nonzero_params"],
            **{k: v for k, v in r.data.params.items() if k.startswith("pruning.")},
        }
        for r in runs
    ]
    columns = ["trial", "run_id", "sparsity", f"val_{metric}", f"test_{metric}", "nonzero_params"]
    table = pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)
    table = table.sort_values("trial").reset_index(drop=True)
    table["pareto"] = pareto.non_dominated(table, [("sparsity", "max"), (f"val_{metric}", direction)])
    return table


def refresh(client: MlflowClient, parent: str, study: str, dense: runner.RunResult) -> pd.DataFrame:
    """Recompute the study's front from its trial runs; log the table, the plot, the hypervolume and the tags."""
    metric, direction = dense.metric, dense.direction
    table = front(client, client.get_run(parent).info.experiment_id, study, metric, direction)
    if table.empty:
        return table
    for row in table.itertuples():
        client.set_tag(row.run_id, "pareto", str(bool(row.pareto)).lower())
    # Reference point (oriented units): no sparsity, and quality one unit worse than dense.
    best = dense.metrics[f"val_{metric}"]
    reference = (0.0, best - 1.0 if direction == "max" else -(best + 1.0))
    volume = pareto.hypervolume(table, [("sparsity", "max"), (f"val_{metric}", direction)], reference)
    tracking.log_metrics(client, parent, {"hypervolume": volume}, step=len(table))
    with tempfile.TemporaryDirectory() as tmp:
        table.to_csv(Path(tmp) / "pareto.csv", index=False)
        plots.front_plot(table, f"val_{metric}", Path(tmp) / "pareto.png", best, f"Pareto front of {study}")
        client.log_artifacts(parent, tmp)
    return table


def run(cfg: Config) -> pd.DataFrame:
    """Train the dense model once, then run trials until the study has `search.n_trials` finished ones."""
    uri = tracking.tracking_uri(cfg.tracking.uri)
    with tracking.open_run(
        uri, cfg.tracking.experiment, cfg.flat(), cfg.search.study, {"pipeline.command": "search"}
    ) as parent:
        # A study of its own per search unless a name is given (then a second command resumes it).
        name = cfg.search.study or f"{cfg.tracking.experiment}-{parent.run_id[:8]}"
        parent.client.set_tag(parent.run_id, "optuna.study", name)
        dense = runner.run(cfg, "train", parent=parent.run_id, tags={ROLE: "dense", "optuna.study": name})
        study = optuna.create_study(
            study_name=name,
            storage=storage(cfg),
            load_if_exists=True,
            directions=["maximize" if dense.direction == "max" else "minimize", "maximize"],
            sampler=optuna.samplers.TPESampler(seed=cfg.search.seed),
        )
        quality = f"val_{dense.metric}"

        def objective(trial: optuna.Trial) -> tuple[float, float]:
            recipe = suggest(trial, cfg.search.space)
            trial_cfg = derive(cfg, {**recipe, "train.epochs": 0, "train.init_from": dense.run_id})
            tags = {ROLE: "trial", "optuna.study": name, "optuna.trial": str(trial.number)}
            result = runner.run(trial_cfg, "prune", parent=parent.run_id, tags=tags)
            print(
                f"trial {trial.number}: sparsity {result.metrics['sparsity']:.4f}  "
                f"{quality} {result.metrics[quality]:.4f}  {recipe}",
                flush=True,
            )
            return result.metrics[quality], result.metrics["sparsity"]

        def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            refresh(parent.client, parent.run_id, name, dense)

        finished = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        study.optimize(objective, n_trials=max(0, cfg.search.n_trials - finished), callbacks=[after])
        if finished >= cfg.search.n_trials:  # nothing ran: this parent still gets the study's front
            refresh(parent.client, parent.run_id, name, dense)
        experiment_id = parent.client.get_run(parent.run_id).info.experiment_id
        table = front(parent.client, experiment_id, name, dense.metric, dense.direction)
        summary(table, dense.metric, uri, parent.run_id)
        return table


def summary(table: pd.DataFrame, metric: str, uri: str, parent: str) -> None:
    """The front as a table, where the runs are, and how to look at them."""
    columns = ["trial", "sparsity", f"val_{metric}", f"test_{metric}", "pruning.method", "pruning.granularity"]
    print("\nPareto front:")
    print(table[table["pareto"]].sort_values("sparsity")[columns].to_string(index=False))
    print(f"\nsearch run {parent} in {uri}: pareto.csv, pareto.png, hypervolume")
    print(f"open it with: mlflow ui --backend-store-uri {uri}")
