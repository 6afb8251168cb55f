"""The MLflow run contract of a pruning run, the logged model, and runs that fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline import runner
from pipeline.errors import ConfigError, StoreError
from pipeline.tracking import tracking_uri

ROOT = Path(__file__).resolve().parent.parent
ROUND_METRICS = ("sparsity", "val_accuracy", "test_accuracy", "nonzero_params", "model_bytes")


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_prune_run_logs_every_round_params_and_a_reloadable_model(tiny) -> None:
    cfg = tiny("pruning.iterations=3", "pruning.amount=0.9")
    run_id = runner.run(cfg, "prune").run_id
    client = MlflowClient(cfg.tracking.uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["pruning.amount"] == "0.9" and run.data.params["model.cell"] == "lstm"
    assert set(cfg.flat()) <= set(run.data.params)
    for key in ROUND_METRICS:
        assert [step for step, _ in history(client, run_id, key)] == [0, 1, 2, 3], key
    sparsity = [v for _, v in history(client, run_id, "sparsity")]
    assert sparsity[0] == 0.0 and all(a < b for a, b in pairwise(sparsity))
    assert sparsity[-1] == pytest.approx(0.9, abs=1e-3)
    sizes = [v for _, v in history(client, run_id, "model_bytes")]
    assert all(a > b for a, b in pairwise(sizes))
    epochs = [step for step, _ in history(client, run_id, "train_loss")]
    assert epochs == list(range(cfg.train.epochs + 3 * cfg.pruning.retrain_epochs))
    assert len(history(client, run_id, "val_loss")) == len(epochs)

    # A fresh process rebuilds the model from the artifact (no pickle) and measures it.
    probe = (
        "import json, sys, torch\n"
        "from pipeline.tracking import load_model\n"
        "from pipeline.pruning import masks\n"
        "net = load_model(sys.argv[1], sys.argv[2])\n"
        "params = dict(net.named_parameters())\n"
        "zeros = all(bool((params[k][~m] == 0).all()) for k, m in masks.read(net).items())\n"
        "measured = sum(int((params[k] == 0).sum()) for k in masks.read(net))"
        " / sum(params[k].numel() for k in masks.read(net))\n"
        "print(json.dumps({'zeros': zeros, 'sparsity': measured, 'n': len(masks.read(net))}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, run_id, cfg.tracking.uri], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded["zeros"] and loaded["n"] == 5  # weight_ih/hh_l0 both directions, head.weight
    assert loaded["sparsity"] == pytest.approx(sparsity[-1], abs=1e-9)


def test_a_failure_mid_run_marks_the_run_failed(tiny, monkeypatch) -> None:
    cfg = tiny()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("pipeline.tracking.log_model", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        runner.run(cfg, "prune")
    runs = MlflowClient(cfg.tracking.uri).search_runs(["0", "1"])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_unreachable_store_is_a_store_error(tiny, tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    cfg = tiny(f"tracking.uri=sqlite:///{tmp_path}/a_file/mlflow.db")
    with pytest.raises(StoreError, match="tracking store sqlite:///"):
        runner.run(cfg, "train")


def test_default_uri_is_an_absolute_sqlite_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5001")
    assert tracking_uri() == "http://127.0.0.1:5001"
    assert tracking_uri("sqlite:////x.db") == "sqlite:////x.db"


def test_mlflow_run_entry_point_logs_into_the_run_it_creates(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_RUN_ID", None)
    overrides = (
        "model.hidden_size=8 train.epochs=1 pruning.iterations=2 pruning.retrain_epochs=1 "
        f"train.checkpoint_dir={tmp_path / 'ck'}"
    )
    subprocess.run(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "run",
            str(ROOT),
            "-e",
            "prune",
            "--env-manager",
            "local",
            "--experiment-name",
            "entry",
            "-P",
            f"overrides={overrides}",
        ],
        env=env,
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("entry").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert [s for s, _ in history(client, runs[0].info.run_id, "sparsity")] == [0, 1, 2]


def test_prune_can_start_from_a_logged_dense_model(tiny, tmp_path: Path) -> None:
    dense_id = runner.run(tiny(), "train").run_id
    client = MlflowClient(tiny().tracking.uri)
    dense_test = history(client, dense_id, "test_accuracy")
    cfg = tiny("train.epochs=0", f"train.init_from={dense_id}", "pruning.iterations=2")
    run_id = runner.run(cfg, "prune").run_id
    assert history(client, run_id, "test_accuracy")[0] == dense_test[0]  # round 0 is the logged dense model
    assert [s for s, _ in history(client, run_id, "sparsity")] == [0, 1, 2]
    assert len(history(client, run_id, "train_loss")) == 2 * cfg.pruning.retrain_epochs  # no dense epochs
    with pytest.raises(ConfigError, match=r"train.init_from=.*cannot be loaded"):
        runner.build(tiny("train.epochs=0", f"train.init_from={dense_id}", "model.hidden_size=9"), 1)
    with pytest.raises(ConfigError, match=r"train\.init_from=nosuchrun"):
        runner.build(tiny("train.epochs=0", "train.init_from=nosuchrun"), 1)


def test_the_run_mlflow_run_exports_is_adopted_in_its_own_store_only(tmp_path: Path, monkeypatch) -> None:
    from pipeline import tracking

    home, other = f"sqlite:///{tmp_path / 'home.db'}", f"sqlite:///{tmp_path / 'other.db'}"
    with tracking.open_run(home, "e", {}) as made:  # the run `mlflow run` would have created
        pass
    monkeypatch.setenv("MLFLOW_RUN_ID", made.run_id)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", home)
    with tracking.open_run(other, "e", {"k": 1}) as elsewhere:  # e.g. compare --log-to another store
        pass
    assert elsewhere.run_id != made.run_id
    assert MlflowClient(other).get_run(elsewhere.run_id).info.status == "FINISHED"
    with tracking.open_run(home, "e", {"k": 2}) as adopted:
        pass
    assert adopted.run_id == made.run_id and MlflowClient(home).get_run(made.run_id).data.params["k"] == "2"
