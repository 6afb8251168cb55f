"""Runs: where they go, how one is opened and closed, and what it logs (metrics, tables, files, tags).

Run contract (see DESIGN.md): params = every config key; per round (step = round, 0 = dense) the
pruning callback logs `sparsity`, `val_<metric>`, `test_<metric>`, `nonzero_params`, `model_bytes`;
per epoch (step = epoch) `train_loss` and `val_loss`; the final model under the artifact path `model/`.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from pipeline.errors import StoreError

MODEL_PATH = "model"
Client = MlflowClient  # the handle other modules pass around without importing mlflow


SECRET = re.compile(r"(://[^:/@\s]+:)[^@\s]+(@)")


def redact(value: Any) -> Any:
    """A URL's password replaced by ***; anything else unchanged. Params, tags and logs go through it."""
    return SECRET.sub(r"\1***\2", value) if isinstance(value, str) else value


def tracking_uri(uri: str | None = None, root: Path | None = None) -> str:
    """The explicit URI, else $MLFLOW_TRACKING_URI, else an absolute sqlite URI of ./mlflow.db."""
    if uri:
        return uri
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{((root or Path.cwd()) / 'mlflow.db').resolve()}"


class RunLogger(Logger):
    """Lightning logger writing to one existing MLflow run, one `log_batch` per call.

    Lightning's own MLFlowLogger opens and finishes runs itself; here the run belongs to `open_run`.
    """

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        super().__init__()
        self.client, self.run_id = client, run_id

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def version(self) -> str:
        return self.run_id

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        # Lightning adds `epoch` to epoch-level logs: per-epoch metrics take the epoch as their step.
        step = int(metrics.pop("epoch")) if "epoch" in metrics else (step or 0)
        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch, synchronous=True)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the run's params are the config, logged once by `open_run`


@contextmanager
def open_run(
    uri: str,
    experiment: str,
    params: Mapping[str, Any],
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    parent: str | None = None,
) -> Iterator[RunLogger]:
    """Open a run (a child of `parent`, or under `mlflow run` the run it made); close it FINISHED, FAILED or
    KILLED, never RUNNING."""
    client, run_id = _start(uri, experiment, run_name, dict(tags or {}), parent)
    try:
        values = {k: "" if v is None else redact(str(v)) for k, v in params.items()}
        client.log_batch(run_id, params=[Param(k, v) for k, v in values.items()])
        yield RunLogger(client, run_id)
    except KeyboardInterrupt:
        client.set_terminated(run_id, "KILLED")
        raise
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def _start(
    uri: str, experiment: str, run_name: str | None, tags: dict[str, str], parent: str | None
) -> tuple[MlflowClient, str]:
    try:
        client = MlflowClient(uri)
        if parent:  # a child lives in its parent's experiment
            experiment_id = client.get_run(parent).info.experiment_id
            tags = {"mlflow.parentRunId": parent, **tags}
            return client, client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        # `mlflow run` creates the run and exports its id and store; log into it rather than opening another,
        # unless this run goes to another store, which does not know that id.
        run_id = os.environ.get("MLFLOW_RUN_ID")
        if run_id and os.environ.get("MLFLOW_TRACKING_URI", uri) == uri:
            if run_name:
                tags = {"mlflow.runName": run_name, **tags}
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
            return client, run_id
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        return client, client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
    except Exception as err:  # whatever the backend raises, the user needs the URI and the cause
        cause = str(err).strip().splitlines()[0]
        raise StoreError(
            f"tracking store {redact(uri)}: cannot be opened ({redact(cause)}); check tracking.uri"
        ) from None


def connect(uri: str) -> MlflowClient:
    """A client of the tracking store at `uri`."""
    return MlflowClient(uri)


def set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    """Set several tags of a run."""
    for key, value in tags.items():
        client.set_tag(run_id, key, redact(value))


def close_run(client: MlflowClient, run_id: str, status: str, tags: Mapping[str, str] | None = None) -> None:
    """End a run with a status (e.g. KILLED for a trial stopped early or lost with its worker)."""
    set_tags(client, run_id, tags or {})
    client.set_terminated(run_id, status)


def log_folder(client: MlflowClient, run_id: str, folder: str | Path, path: str | None = None) -> None:
    """Log every file of a folder under the run's artifact path `path` (default: the root)."""
    client.log_artifacts(run_id, str(folder), artifact_path=path)


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    """Log several metrics in one batch."""
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def log_table(client: MlflowClient, run_id: str, rows: list[dict[str, Any]], path: str) -> None:
    """Log rows as `<path>.csv` and `<path>.json` (one table, two formats)."""
    frame = pd.DataFrame(rows)
    folder, _, stem = path.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        frame.to_csv(Path(tmp) / f"{stem}.csv", index=False)
        frame.to_json(Path(tmp) / f"{stem}.json", orient="records", indent=2)
        client.log_artifacts(run_id, tmp, artifact_path=folder or None)
