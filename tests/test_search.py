"""The search: run tree, Pareto artifacts and tags against an independent computation, resuming a study."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import search, tracking


def trial_runs(client: MlflowClient, study: str) -> list:
    return client.search_runs(
        ["1"], filter_string=f"tags.`optuna.study` = '{study}' and tags.`pipeline.role` = 'trial'"
    )


def dominated(a: tuple[float, float], others: list[tuple[float, float]]) -> bool:
    return any(b[0] >= a[0] and b[1] >= a[1] and b != a for b in others)


def test_search_logs_a_run_tree_and_tags_exactly_the_front(tiny, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default journal lies in the working directory
    cfg = tiny("search.n_trials=4", "search.study=s1")
    table = search.run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    parents = client.search_runs(["1"], filter_string="tags.`pipeline.command` = 'search'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0].info.run_id
    assert {a.path for a in client.list_artifacts(parent)} >= {"pareto.csv", "pareto.png"}
    assert sorted({m.step for m in client.get_metric_history(parent, "hypervolume")}) == [1, 2, 3, 4]
    children = client.search_runs(["1"], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    roles = sorted(r.data.tags["pipeline.role"] for r in children)
    assert roles == ["dense"] + ["trial"] * 4
    trials = trial_runs(client, "s1")
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trials) == [0, 1, 2, 3]
    assert all(r.info.status == "FINISHED" and "pruning.method" in r.data.params for r in trials)
    points = {r.info.run_id: (r.data.metrics["val_accuracy"], r.data.metrics["sparsity"]) for r in trials}
    expected = {rid for rid, p in points.items() if not dominated(p, list(points.values()))}
    assert {r.info.run_id for r in trials if r.data.tags["pareto"] == "true"} == expected
    assert set(table.loc[table["pareto"], "run_id"]) == expected
    saved = pd.read_csv(client.download_artifacts(parent, "pareto.csv", str(tmp_path)))
    assert set(saved.loc[saved["pareto"], "run_id"]) == expected
    aliases = client.get_registered_model("s1").aliases
    assert {client.get_model_version_by_alias("s1", a).run_id for a in aliases} == expected
    net = tracking.load_registered("s1", "front-1", cfg.tracking.uri)
    assert net.config["hidden_size"] == cfg.model.hidden_size


def test_running_again_resumes_the_study_without_duplicates(tiny, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    search.run(tiny("search.n_trials=2", "search.study=s2"))
    table = search.run(tiny("search.n_trials=3", "search.study=s2"))
    client = MlflowClient(tiny().tracking.uri)
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trial_runs(client, "s2")) == [0, 1, 2]
    assert sorted(table["trial"]) == [0, 1, 2]  # the front covers the study, across both commands


def test_passwords_never_reach_params_or_messages(tiny, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    from pipeline import cli

    with tracking.open_run(tiny().tracking.uri, "e", {"search.storage": "postgresql://u:hunter2@h:5432/db"}) as run:
        pass
    assert run.client.get_run(run.run_id).data.params["search.storage"] == "postgresql://u:***@h:5432/db"
    unreachable = "search.storage=postgresql://postgres:hunter2@127.0.0.1:1/nothing"
    assert cli.main(["search", unreachable, f"tracking.uri=sqlite:///{tmp_path / 'other.db'}"]) == 2
    err = capsys.readouterr().err
    assert "search.storage=postgresql://postgres:***@127.0.0.1:1/nothing: cannot be opened" in err
    assert "hunter2" not in err and not (tmp_path / "other.db").exists()  # failed before any run was opened


def test_a_quality_floor_stops_trials_and_closes_their_runs(tiny, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tiny("search.n_trials=2", "search.study=floor", "search.quality_floor=1.01")  # unreachable accuracy
    table = search.run(cfg)
    assert table.empty
    client = MlflowClient(cfg.tracking.uri)
    runs = trial_runs(client, "floor")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"KILLED"}
    assert all("search.quality_floor" in r.data.tags["pruned_reason"] for r in runs)
    storage = search.storage(cfg)
    study = search.optuna.load_study(study_name="floor", storage=storage)
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]


def test_constrained_mode_optimises_quality_under_a_sparsity_constraint(tiny, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tiny("search.n_trials=3", "search.study=con", "search.mode=constrained", "search.min_sparsity=0.8")
    search.run(cfg)
    study = search.optuna.load_study(study_name="con", storage=search.storage(cfg))
    assert len(study.directions) == 1
    client = MlflowClient(cfg.tracking.uri)
    sparsity = {r.data.tags["optuna.trial"]: r.data.metrics["sparsity"] for r in trial_runs(client, "con")}
    for trial in study.get_trials(states=(search.COMPLETE,)):
        constraint = trial.system_attrs["constraints:min_sparsity"]
        assert constraint == pytest.approx(0.8 - sparsity[str(trial.number)])
