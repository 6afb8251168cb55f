"""Reading runs back: a study's trials (for its front), a source's runs, metric histories and artifacts
(for comparisons and reports)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from pipeline.errors import StoreError
from pipeline.tracking.runs import redact


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
