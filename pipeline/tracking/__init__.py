"""The only package that talks to MLflow; other modules use these functions and never import mlflow.

runs.py     where runs go, opening and closing them, logging metrics, tables, files and tags
models.py   the model artifact (plain tensors and JSON) and the model registry
sources.py  reading runs back: a study's trials, a source's runs, metric histories, artifacts
"""

from pipeline.tracking.models import MODEL_PATH, load_model, load_registered, log_model, register_front
from pipeline.tracking.runs import (
    Client,
    RunLogger,
    close_run,
    connect,
    log_folder,
    log_metrics,
    log_table,
    open_run,
    redact,
    set_tags,
    tracking_uri,
)
from pipeline.tracking.sources import check, download, metric_history, source_runs, study_runs

__all__ = [
    "MODEL_PATH",
    "Client",
    "RunLogger",
    "check",
    "close_run",
    "connect",
    "download",
    "load_model",
    "load_registered",
    "log_folder",
    "log_metrics",
    "log_model",
    "log_table",
    "metric_history",
    "open_run",
    "redact",
    "register_front",
    "set_tags",
    "source_runs",
    "study_runs",
    "tracking_uri",
]
