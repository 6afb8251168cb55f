"""Two workers on one PostgreSQL study: exactly n_trials finished, one MLflow run each, a killed worker's
trial retried. Needs the PostgreSQL server at 127.0.0.1:5432 (skipped without it, except under CI=true)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import postgres
import pytest
from conftest import TINY
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parent.parent
COMPLETE, RUNNING = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING


@pytest.fixture
def databases():
    """Two fresh databases, one for Optuna and one for MLflow (never one database for both)."""
    with postgres.databases("optuna", "mlflow") as urls:
        yield urls


def kill_a_helper_mid_trial(storage: str, main_pid: int, process: subprocess.Popen) -> optuna.trial.FrozenTrial:
    """SIGKILL the helper worker (not the main process) while it runs a trial; return that trial."""
    deadline, rdb = time.time() + 180, optuna.storages.RDBStorage(storage)  # one connection pool, reused
    while time.time() < deadline and process.poll() is None:
        try:
            study = optuna.load_study(study_name="dist", storage=rdb)
        except KeyError:
            time.sleep(0.2)
            continue
        for trial in study.get_trials(states=(RUNNING,)):
            pid = trial.user_attrs.get("pid")
            if pid and pid != main_pid and "mlflow_run_id" in trial.user_attrs:
                os.kill(pid, signal.SIGKILL)
                return trial
        time.sleep(0.1)
    output = process.communicate()[0] if process.poll() is not None else "(still running)"
    raise AssertionError(f"no helper worker ran a trial in time; the command's output ends:\n{output[-3000:]}")


def test_two_workers_finish_the_study_after_one_is_killed(databases, tmp_path: Path) -> None:
    optuna_url, mlflow_url = databases
    # Trials long enough that the helper, whose process start takes seconds on a busy machine, gets some.
    n_trials = 8
    space = "{pruning.method: {choices: [magnitude, taylor]}, pruning.iterations: {low: 3, high: 4}}"
    overrides = [
        *TINY,
        "pruning.retrain_epochs=4",
        f"tracking.uri={mlflow_url}",
        f"train.checkpoint_dir={tmp_path / 'ck'}",
        f"search.n_trials={n_trials}",
        "search.workers=2",
        "search.study=dist",
        "search.heartbeat=1",
        f"search.storage={optuna_url}",
        f"search.space={space}",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "search", *overrides],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed = kill_a_helper_mid_trial(optuna_url, process.pid, process)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]

    study = optuna.load_study(study_name="dist", storage=optuna_url)
    complete = study.get_trials(states=(COMPLETE,))
    assert len(complete) == n_trials
    assert study.trials[killed.number].state == optuna.trial.TrialState.FAIL
    retried = [optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in study.trials]
    assert killed.number in retried  # the same recipe was queued again and run by the survivor

    client = MlflowClient(mlflow_url)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        experiments, filter_string="tags.`optuna.study` = 'dist' and tags.`pipeline.role` = 'trial'"
    )
    finished = Counter(r.data.tags["optuna.trial"] for r in runs if r.info.status == "FINISHED")
    assert finished == Counter({str(t.number): 1 for t in complete})  # exactly one run per finished trial
    status = {r.info.run_id: r.info.status for r in runs}
    assert status[killed.user_attrs["mlflow_run_id"]] == "KILLED"
    assert "RUNNING" not in status.values()
