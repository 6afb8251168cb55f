"""The model artifact: plain tensors and JSON, loadable without unpickling arbitrary objects; the registry."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from mlflow.tracking import MlflowClient
from torch import nn

from pipeline.models import RNNNet
from pipeline.pruning import masks
from pipeline.tracking.runs import MODEL_PATH, tracking_uri


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
