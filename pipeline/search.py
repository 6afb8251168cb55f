"""Optuna searches the pruning recipe: a multi-objective study of (validation quality, sparsity).

Run tree: the search's parent run; under it one child run trains the dense model (once per study) and
one child run per trial prunes a copy of it with the trial's recipe, logging every round. After every
finished trial the study's front is refreshed from its runs (fronts.py). `search.workers` processes, on
this machine or others sharing an RDB storage, take trials from one study until it has exactly
`search.n_trials` finished ones; a dead worker's trial is retried through Optuna's heartbeats.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
import random
import time
from functools import partial
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
import pandas as pd
import torch

from pipeline import fronts, runner, tracking
from pipeline.conf import derive
from pipeline.config import Config
from pipeline.errors import StoreError
from pipeline.pruning.callback import PruningCallback

ROLE = fronts.ROLE
MODES = {
    "pareto": "two objectives, validation quality and sparsity; a quality floor stops hopeless trials",
    "constrained": "validation quality subject to sparsity >= search.min_sparsity; a median pruner per round",
}
COMPLETE, PRUNED, RUNNING = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.RUNNING,
)


class Surplus(Exception):
    """A worker started a trial while others were already running the last ones: it gives way."""


def storage(cfg: Config) -> optuna.storages.BaseStorage:
    """`search.storage` (an RDB URL, with heartbeats so a killed worker's trial is retried), else a journal
    file next to the default MLflow store. One per process: each RDB storage holds a connection pool."""
    return _storage(cfg.search.storage, cfg.search.heartbeat, str(Path.cwd() / "optuna.journal"))


@functools.lru_cache(maxsize=4)
def _storage(url: str | None, heartbeat: int, journal: str) -> optuna.storages.BaseStorage:
    if url is None:
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    try:
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat, grace_period=3 * heartbeat, failed_trial_callback=retry_stale
        )
    except Exception as err:  # whatever the driver raises: the URL (without password) and the cause
        cause = tracking.redact(" ".join(str(err).split())[:200])
        raise StoreError(f"search.storage={tracking.redact(url)}: cannot be opened ({cause})") from None


def retry_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A worker died mid-trial: close its MLflow run as KILLED and queue the same recipe again."""
    run_id, uri = trial.user_attrs.get("mlflow_run_id"), study.user_attrs.get("tracking_uri")
    if run_id and uri:
        tracking.close_run(tracking.connect(uri), run_id, "KILLED")
    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)(study, trial)


class RoundWatch(pl.Callback):
    """Hands each evaluated round to the trial and stops hopeless trials: by Optuna's median pruner
    (constrained mode; multi-objective studies cannot report) or by the quality floor (pareto mode)."""

    def __init__(self, trial: optuna.Trial, quality: str, direction: str, cfg: Config) -> None:
        self.trial, self.quality, self.direction, self.seen = trial, quality, direction, 0
        self.report, self.floor = cfg.search.mode == "constrained", cfg.search.quality_floor

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = next(c for c in trainer.callbacks if isinstance(c, PruningCallback)).history
        for record in history[self.seen :]:
            self.seen += 1
            value, r = record[self.quality], record["round"]
            if self.report:
                self.trial.report(value, r)
                if self.trial.should_prune():
                    raise optuna.TrialPruned(f"round {r}: {self.quality} {value:.4f} is worse than the median")
            if self.floor is not None and (value < self.floor if self.direction == "max" else value > self.floor):
                raise optuna.TrialPruned(f"round {r}: {self.quality} {value:.4f} is past search.quality_floor")


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


def run(cfg: Config) -> pd.DataFrame:
    """Run trials until the study has `search.n_trials` finished ones, in `search.workers` processes.

    The dense model is trained once per study (a later command on the same study reuses it), and the
    study is created here, before any worker starts, so workers never race to create its schema.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the search prints its own line per trial
    runner.check_data(cfg)  # data that cannot be used fails here, before any run is opened
    storage(cfg)  # and so does an unreachable study store
    uri = tracking.tracking_uri(cfg.tracking.uri)
    tags = {"pipeline.command": "search"}
    with tracking.open_run(uri, cfg.tracking.experiment, cfg.flat(), cfg.search.study, tags) as parent:
        name = cfg.search.study or f"{cfg.tracking.experiment}-{parent.run_id[:8]}"
        tracking.set_tags(parent.client, parent.run_id, {"optuna.study": name})
        study = open_study(cfg, name, parent.run_id, uri)
        dense = runner.RunResult(**study.user_attrs["dense"])
        context = multiprocessing.get_context("spawn")
        helpers = [
            context.Process(target=work, args=(cfg, name, parent.run_id, dense, index))
            for index in range(1, cfg.search.workers)
        ]
        for helper in helpers:
            helper.start()
        work(cfg, name, parent.run_id, dense, 0)
        for helper in helpers:
            helper.join()
        lost = [h.pid for h in helpers if h.exitcode]
        if lost and _finished(study) < cfg.search.n_trials:
            raise RuntimeError(f"search workers {lost} died and the study is unfinished; run the command again")
        if lost:
            print(f"search workers {lost} died; the others finished the study", flush=True)
        fronts.refresh(parent.client, parent.run_id, name, dense)
        table = fronts.front(parent.client, parent.run_id, name, dense.metric, dense.direction)
        on_front = table[table["pareto"]].sort_values("sparsity")
        tracking.register_front(parent.client, name, list(on_front["run_id"]))
        fronts.summary(table, dense.metric, uri, parent.run_id, name)
        return table


def open_study(cfg: Config, name: str, parent: str, uri: str) -> optuna.Study:
    """Create or load the study; train and remember its dense model if it has none yet."""
    study = optuna.load_study(study_name=name, storage=storage(cfg)) if _exists(cfg, name) else None
    if study is None:
        pareto_mode = cfg.search.mode == "pareto"
        dense = runner.run(cfg, "train", parent=parent, tags={ROLE: "dense", "optuna.study": name})
        study = optuna.create_study(
            study_name=name,
            storage=storage(cfg),
            load_if_exists=True,
            directions=["maximize" if dense.direction == "max" else "minimize", "maximize"][: 1 + pareto_mode],
            sampler=optuna.samplers.TPESampler(seed=cfg.search.seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=3) if not pareto_mode else None,
        )
        study.set_user_attr("dense", dataclasses.asdict(dense))
        study.set_user_attr("tracking_uri", uri)
    return study


def _exists(cfg: Config, name: str) -> bool:
    summaries = optuna.get_all_study_summaries(storage(cfg), include_best_trial=False)
    return any(s.study_name == name and "dense" in s.user_attrs for s in summaries)


def work(cfg: Config, name: str, parent: str, dense: runner.RunResult, index: int) -> None:
    """One worker: take trials from the study until it has `search.n_trials` finished ones."""
    os.environ.pop("MLFLOW_RUN_ID", None)  # inherited from `mlflow run`: trial runs are children, not it
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a spawned worker is a fresh process
    if cfg.search.workers > 1:  # workers share the cores (a single worker keeps the caller's setting)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.search.workers))
    sampler = optuna.samplers.TPESampler(seed=cfg.search.seed + index)  # workers must not propose alike
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3) if cfg.search.mode == "constrained" else None
    study = optuna.load_study(study_name=name, storage=storage(cfg), sampler=sampler, pruner=pruner)
    quality = f"val_{dense.metric}"

    gave_way = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        if _finished(study) + _count(study, RUNNING) - 1 >= cfg.search.n_trials:
            gave_way.append(trial.number)
            raise Surplus("other workers are already running the last trials")
        recipe = suggest(trial, cfg.search.space)
        trial_cfg = derive(cfg, {**recipe, "train.epochs": 0, "train.init_from": dense.run_id})
        tags = {ROLE: "trial", "optuna.study": name, "optuna.trial": str(trial.number)}
        trial.set_user_attr("pid", os.getpid())
        started = partial(trial.set_user_attr, "mlflow_run_id")
        watch = RoundWatch(trial, quality, dense.direction, cfg)
        try:
            result = runner.run(trial_cfg, "prune", parent=parent, tags=tags, started=started, callbacks=[watch])
        except optuna.TrialPruned as stop:  # its run: KILLED, with the reason
            client = tracking.connect(tracking.tracking_uri(cfg.tracking.uri))
            tracking.close_run(client, trial.user_attrs["mlflow_run_id"], "KILLED", {"pruned_reason": str(stop)})
            print(f"trial {trial.number}: stopped, {stop}", flush=True)
            raise
        print(
            f"trial {trial.number}: sparsity {result.metrics['sparsity']:.4f}  "
            f"{quality} {result.metrics[quality]:.4f}  {recipe}",
            flush=True,
        )
        if cfg.search.mode == "constrained":  # feasible when <= 0
            trial.set_constraint("min_sparsity", cfg.search.min_sparsity - result.metrics["sparsity"])
            return result.metrics[quality]
        return result.metrics[quality], result.metrics["sparsity"]

    def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == COMPLETE:
            fronts.refresh(tracking.connect(tracking.tracking_uri(cfg.tracking.uri)), parent, name, dense)

    # Exactly n_trials finished trials across all workers: a worker takes one trial at a time, and waits
    # while the others run the last ones (with heartbeats, a dead worker's trial comes back to be taken).
    heartbeats = cfg.search.storage is not None
    while (finished := _finished(study)) < cfg.search.n_trials:
        optuna.storages.fail_stale_trials(study)
        if finished + _count(study, RUNNING) >= cfg.search.n_trials:
            if not heartbeats:
                break
            time.sleep(0.5 + random.random())
            continue
        study.optimize(objective, n_trials=1, callbacks=[after], catch=(Surplus,))
        if gave_way:  # workers gave way to each other: try again out of step
            gave_way.clear()
            time.sleep(random.random())


def _finished(study: optuna.Study) -> int:
    """Trials that ran to an end: completed, or stopped by the pruner or the quality floor."""
    return _count(study, COMPLETE) + _count(study, PRUNED)


def _count(study: optuna.Study, state: optuna.trial.TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))
