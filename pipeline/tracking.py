"""The only module that talks to MLflow: where runs go, how a run is opened and closed, what it logs.

Run contract (see DESIGN.md): params = every config key; per round (step = round, 0 = dense) the
pruning callback logs `sparsity`, `val_<metric>`, `test_<metric>`, `nonzero_params`, `model_bytes`;
per epoch (step = epoch) `train_loss` and `val_loss`; the final model under the artifact path `model/`.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from torch import nn

from pipeline.errors import StoreError
from pipeline.models import RNNNet
from pipeline.pruning import masks

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
        # `mlflow run` creates the run and exports its id; log into it rather than opening another.
        if run_id := os.environ.get("MLFLOW_RUN_ID"):
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


def study_runs(client: MlflowClient, parent: str, study: str, role: str, metrics: list[str]) -> list[dict[str, Any]]:
    """The finished trial runs of a study (in the parent's experiment): final metrics, recipe, pareto tag."""
    experiment_id = client.get_run(parent).info.experiment_id
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`optuna.study` = '{study}' and tags.`{role}` = 'trial' and status = 'FINISHED'",
    )
    return [
        {
            "trial": int(r.data.tags["optuna.trial"]),
            "run_id": r.info.run_id,
            "sparsity": r.data.metrics["sparsity"],
            **{key: r.data.metrics[key] for key in metrics},
            "nonzero_params": r.data.metrics["nonzero_params"],
            "tagged": r.data.tags.get("pareto"),
            **{k: v for k, v in r.data.params.items() if k.startswith("pruning.")},
        }
        for r in runs
    ]


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


# --- the model artifact: plain tensors and JSON, loadable without unpickling arbitrary objects -------


def log_model(client: MlflowClient, run_id: str, net: nn.Module, path: str = MODEL_PATH) -> None:
    """Log `net` with its masks folded in, the masks themselves and its constructor arguments."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "net.json").write_text(json.dumps({"class": type(net).__name__, "config": net.config}, indent=2))
        torch.save(masks.fold(net), folder / "state_dict.pt")
        torch.save({name: m.clone() for name, m in masks.read(net).items()}, folder / "masks.pt")
        client.log_artifacts(run_id, str(folder), artifact_path=path)


def load_model(run_id: str, uri: str | None = None, path: str = MODEL_PATH) -> RNNNet:
    """A logged model of a run (`model` or `compacted_model`), rebuilt from its artifact, masks attached."""
    config, state, saved = _download(run_id, tracking_uri(uri), path)
    net = RNNNet(**config)
    net.load_state_dict(state)  # copies: the cached tensors are never trained
    masks.attach(net, saved)
    masks.update(net, saved)
    return net


@functools.lru_cache(maxsize=8)
def _download(
    run_id: str, uri: str, path: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    # A logged model never changes: every search trial starts from the same dense model, downloaded once.
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(MlflowClient(uri).download_artifacts(run_id, path, tmp))
        config = json.loads((folder / "net.json").read_text())["config"]
        state = torch.load(folder / "state_dict.pt", weights_only=True)
        return config, state, torch.load(folder / "masks.pt", weights_only=True)


def register_front(client: MlflowClient, name: str, run_ids: list[str]) -> dict[str, str]:
    """Register each run's model as a version of `name`, aliased `front-1`, `front-2`, ... (the order given);
    stale `front-k` aliases are removed. Returns alias -> run id."""
    try:
        client.get_registered_model(name)
    except Exception:  # not registered yet
        client.create_registered_model(name, description="the Pareto front of a pruning search")
    versions = {v.run_id: v.version for v in client.search_model_versions(f"name = '{name}'")}
    aliases = {}
    for k, run_id in enumerate(run_ids, start=1):
        if run_id not in versions:
            versions[run_id] = client.create_model_version(name, f"runs:/{run_id}/{MODEL_PATH}", run_id).version
        client.set_registered_model_alias(name, f"front-{k}", versions[run_id])
        aliases[f"front-{k}"] = run_id
    for alias in client.get_registered_model(name).aliases:
        if alias.startswith("front-") and alias not in aliases:
            client.delete_registered_model_alias(name, alias)
    return aliases


def load_registered(name: str, alias: str, uri: str | None = None) -> RNNNet:
    """The model a registry alias points to (e.g. `front-1` of a search)."""
    client = MlflowClient(tracking_uri(uri))
    return load_model(client.get_model_version_by_alias(name, alias).run_id, uri)


# --- reading searches back: comparisons and reports ---------------------------------------------------

# MLflow retries a refused HTTP request with backoff (about four minutes on a closed port); a comparison must
# say at once that a server is down. MLflow reads these per request; they are restored after the read.
FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
UNREACHABLE = re.compile(r"Connection refused|timed out|Name or service not known|No route to host|Failed to resolve")


@contextmanager
def _fail_fast() -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in FAIL_FAST}
    os.environ.update(FAIL_FAST)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check(uri: str, what: str = "tracking store") -> None:
    """Fail at once, with a StoreError naming `what` and `uri`, if the tracking store at `uri` does not answer."""
    try:
        with _fail_fast():
            MlflowClient(uri).search_experiments(max_results=1)
    except Exception as err:  # whatever the backend raises: one line with the cause
        raise StoreError(f"{what} {redact(uri)}: {_cause(err)}") from None


def source_runs(uri: str, name: str) -> list[dict[str, Any]]:
    """The finished runs of experiment `name`, or of the search whose parent run id is `name` (its children):
    run id, tags, params (strings) and final metrics. A StoreError says why the source cannot be read."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise StoreError("no such sqlite file")  # MLflow would create an empty store instead
    try:
        with _fail_fast():
            client = MlflowClient(uri)
            ids, where = _scope(client, name)
            runs = _search_all(client, ids, f"status = 'FINISHED'{where}")
    except StoreError:
        raise
    except Exception as err:  # whatever the backend raises: one line with the cause
        raise StoreError(_cause(err)) from None
    return [
        {"run_id": r.info.run_id, "tags": dict(r.data.tags), "params": dict(r.data.params), "metrics": r.data.metrics}
        for r in runs
    ]


def _cause(err: Exception) -> str:
    text = " ".join(str(err).split())
    refused = UNREACHABLE.search(text)
    return f"the tracking store does not answer ({refused.group(0)})" if refused else redact(text[:200])


def _scope(client: MlflowClient, name: str) -> tuple[list[str], str]:
    """Experiment ids and the extra filter of a source: a whole experiment, or one search's child runs."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return [experiment.experiment_id], ""
    try:
        parent = client.get_run(name)
    except Exception:  # not a run id either
        raise StoreError(f"no experiment or parent run named {name!r}") from None
    return [parent.info.experiment_id], f" and tags.mlflow.parentRunId = '{name}'"


def _search_all(client: MlflowClient, ids: list[str], where: str) -> list[Any]:
    runs, token = [], None
    while True:  # one page holds at most 1000 runs
        page = client.search_runs(ids, filter_string=where, max_results=1000, page_token=token)
        runs += list(page)
        if not (token := page.token):
            return runs


def metric_history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    """step -> value of a metric of a run (the last value logged at each step)."""
    return {m.step: m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)}


def download(client: MlflowClient, run_id: str, path: str, folder: str | Path) -> Path | None:
    """Download a run's artifact into `folder`; None when the run has no such artifact."""
    try:
        return Path(client.download_artifacts(run_id, path, str(folder)))
    except Exception:  # older runs may lack it: callers show what there is
        return None
