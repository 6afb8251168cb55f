"""The four task families on tiny data: each trains, prunes and logs its own metric, with its invariants
(time order and train-only scaling for forecasting, a contiguous split and exact bits per character for
language modelling, a cache for MNIST-1D) and one clear line for every kind of bad data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline import cli, conf, config, runner
from pipeline.data import TASKS
from pipeline.models import RNNModule, RNNNet
from pipeline.tracking import load_model

TEXT = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.\n" * 40


def write_series(path: Path, n: int = 160, shuffle: bool = False) -> Path:
    """A monthly series with a trend, a yearly season and a little noise, plus a text column."""
    t = np.arange(n)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "month": pd.date_range("2000-01-01", periods=n, freq="MS").strftime("%Y-%m-%d"),
            "sales": 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.5, n),
            "price": 5 + np.cos(2 * np.pi * t / 12),
            "note": ["ok"] * n,
        }
    )
    if shuffle:
        frame = frame.sample(frac=1.0, random_state=1)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    return {"csv": write_series(root / "sales.csv"), "text": root / "text.txt", "cache": root / "cache"}


def task_overrides(name: str, files: dict[str, Path]) -> list[str]:
    return {
        "speech": ["task=speech", "task.dataset=BasicMotions"],
        "mnist1d": ["task=mnist1d", f"task.cache_dir={files['cache']}"],
        "forecast": [
            "task=forecast",
            f"task.path={files['csv']}",
            "task.time_column=month",
            "task.target=sales",
            "task.features=price",
            "task.window=12",
            "task.horizon=3",
            "task.season=12",
        ],
        "language": ["task=language", f"task.path={files['text']}", "task.window=32"],
    }[name]


EXPECTED = {"speech": ("accuracy",), "mnist1d": ("accuracy",), "forecast": ("rmse", "mae"), "language": ("bpc",)}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_prunes_and_logs_its_metrics_in_its_direction(name: str, tiny, files, tmp_path: Path) -> None:
    cfg = tiny(*task_overrides(name, files), "pruning.amount=0.8")
    result = runner.run(cfg, "prune")
    assert result.metric == EXPECTED[name][0]
    assert result.direction == ("max" if name in ("speech", "mnist1d") else "min")
    client = MlflowClient(cfg.tracking.uri)
    for metric in EXPECTED[name]:
        for split in ("val", "test"):
            steps = [m.step for m in client.get_metric_history(result.run_id, f"{split}_{metric}")]
            assert sorted(steps) == [0, 1, 2, 3], (metric, split)
    assert result.metrics["sparsity"] == pytest.approx(0.8, abs=1e-3)
    net = load_model(result.run_id, cfg.tracking.uri)  # the logged model is the task's model
    data = TASKS[name].build(cfg.task, cfg.train.seed)
    x, lengths, _ = next(iter(data.val_dataloader()))
    assert net(x, lengths).shape[-1] == data.spec.num_outputs
    task = json.loads(Path(client.download_artifacts(result.run_id, "task.json", str(tmp_path))).read_text())
    assert task["name"] == name and task["metrics"] == list(EXPECTED[name])
    if name in ("speech", "language"):  # what it takes to encode new data for the logged model
        assert len(task["encoding"]["classes" if name == "speech" else "vocabulary"]) + (name == "language") == (
            data.spec.num_outputs
        )
    if name == "forecast":  # the baselines sit beside the model's figures
        logged = client.get_run(result.run_id).data.metrics
        assert {"seasonal_naive_test_rmse", "naive_test_rmse", "naive_val_mae"} <= set(logged)


def test_speech_reads_univariate_equal_and_variable_length_sets() -> None:
    for dataset, channels, variable in (("GunPoint", 1, False), ("PickupGestureWiimoteZ", 1, True)):
        data = TASKS["speech"].build(config.TaskConfig(dataset=dataset), 0)
        lengths = {len(x) for split in data.splits.values() for x, _ in split}
        assert data.spec.input_size == channels and (len(lengths) > 1) == variable


def forecast_data(tmp_path: Path, csv: Path, **changes) -> object:
    task = config.TaskConfig(
        name="forecast", path=str(csv), time_column="month", target="sales", window=12, horizon=3, season=12
    )
    for key, value in changes.items():
        setattr(task, key, value)
    return TASKS["forecast"].build(task, 0)


def test_forecast_splits_follow_time_and_scaling_sees_train_only(tmp_path: Path) -> None:
    data = forecast_data(tmp_path, write_series(tmp_path / "s.csv", shuffle=True))  # rows out of order
    splits, starts, h = data.splits, data.starts, data.task.horizon
    assert max(starts["train"]) + h - 1 < min(starts["val"]) and max(starts["val"]) + h - 1 < min(starts["test"])
    assert max(starts["test"]) + h == 160  # the last window ends with the series
    by_month = pd.read_csv(tmp_path / "s.csv").sort_values("month")["sales"].to_numpy()
    assert np.array_equal(data.raw[:, 0], by_month)  # the shuffled rows were put back in time order
    # Changing the future (val and test segments) leaves the training windows untouched.
    frame = pd.read_csv(tmp_path / "s.csv")
    late = pd.to_datetime(frame["month"]) >= pd.Timestamp("2000-01-01") + pd.DateOffset(months=120)
    frame.loc[late, "sales"] *= 50
    frame.to_csv(tmp_path / "changed.csv", index=False)
    changed = forecast_data(tmp_path, tmp_path / "changed.csv")
    assert len(changed.splits["train"]) == len(splits["train"])
    for (x0, y0), (x1, y1) in zip(splits["train"], changed.splits["train"], strict=True):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_forecast_metrics_are_in_the_targets_units(tmp_path: Path) -> None:
    data = forecast_data(tmp_path, write_series(tmp_path / "s.csv"))
    spec = data.spec
    assert spec.metrics == ("rmse", "mae") and spec.direction == "min"
    # A network that predicts no change forecasts the last value: exactly the naive baseline, in sales units.
    module = RNNModule(
        input_size=spec.input_size, hidden_size=4, num_outputs=spec.num_outputs, loss=spec.loss,
        metrics=list(spec.metrics), scale=list(spec.scale),
    )  # fmt: skip
    torch.nn.init.zeros_(module.net.head.weight)
    torch.nn.init.zeros_(module.net.head.bias)
    for split, loader in (("val", data.val_dataloader()), ("test", data.test_dataloader())):
        scores = module.evaluate(loader)
        assert scores["rmse"] == pytest.approx(spec.baseline[f"naive_{split}_rmse"], rel=1e-4)
        assert scores["mae"] == pytest.approx(spec.baseline[f"naive_{split}_mae"], rel=1e-4)
    # The seasonal-naive baseline, by hand: each step repeats the value one season earlier.
    raw, starts = data.raw[:, 0], data.starts["test"]
    errors = [raw[t + k - 12] - raw[t + k] for t in starts for k in range(3)]
    assert spec.baseline["seasonal_naive_test_rmse"] == pytest.approx(math.sqrt(np.mean(np.square(errors))))


def test_language_split_vocabulary_and_bits_per_character(tmp_path: Path) -> None:
    text = TEXT + "Zebra! ñ"  # 'Z', '!' and 'ñ' occur only in the test segment
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    task = config.TaskConfig(name="language", path=str(tmp_path / "t.txt"), window=16)
    data = TASKS["language"].build(task, 0)
    splits, vocabulary = data.splits, data.vocabulary
    decode = {i + 1: c for i, c in enumerate(vocabulary)}
    pieces = [
        "".join(decode.get(int(i), "\0") for x, _ in splits[s] for i in x) + decode.get(int(splits[s][-1][1][-1]), "\0")
        for s in ("train", "val", "test")
    ]
    n = len(text)
    val, test = n - round(n * 0.35), n - round(n * 0.15)
    assert pieces[0] == text[:val] and pieces[1] == text[val:test]  # contiguous, in order, nothing lost
    assert set(vocabulary) == set(text[:val]) and "Z" not in vocabulary
    assert pieces[2].endswith("\0ebra\0 \0")  # unseen characters map to the unknown id
    for x, y in splits["train"]:
        assert torch.equal(x[1:], y[:-1])  # each target is the next character
    # A model that is uniform over the vocabulary scores exactly log2(V) bits per character.
    spec = data.spec
    module = RNNModule(
        input_size=8, hidden_size=4, num_outputs=spec.num_outputs, vocab_size=spec.input_size, per_step=True,
        bidirectional=False, metrics=["bpc"],
    )  # fmt: skip
    torch.nn.init.zeros_(module.net.head.weight)
    torch.nn.init.zeros_(module.net.head.bias)
    assert module.evaluate(data.test_dataloader())["bpc"] == pytest.approx(math.log2(spec.num_outputs))


def test_language_model_reads_forwards_only() -> None:
    with pytest.raises(config.ConfigError, match=r"model\.bidirectional=true: task language predicts the next step"):
        conf.load(["task=language", "model.bidirectional=true"])
    assert conf.load(["task=language"]).model.bidirectional is False  # the task file asks for it
    torch.manual_seed(0)
    net = RNNNet("gru", 6, 5, 2, False, 0.0, 11, vocab_size=11, per_step=True).eval()
    x = torch.randint(0, 11, (1, 9))
    changed = x.clone()
    changed[0, 6:] = (x[0, 6:] + 1) % 11
    lengths = torch.tensor([9])
    assert torch.equal(net(x, lengths)[0, :6], net(changed, lengths)[0, :6])
    assert not torch.equal(net(x, lengths)[0, 6:], net(changed, lengths)[0, 6:])


def test_mnist1d_is_generated_once_then_read_from_the_cache(tmp_path: Path, monkeypatch) -> None:
    import mnist1d.data

    calls = []
    make = mnist1d.data.make_dataset
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda *a: calls.append(1) or make(*a))
    task = config.TaskConfig(name="mnist1d", cache_dir=str(tmp_path / "cache"))
    first = TASKS["mnist1d"].build(task, 0).splits
    again = TASKS["mnist1d"].build(task, 0).splits
    assert calls == [1] and next((tmp_path / "cache").iterdir()).suffix == ".npz"
    assert [len(first[s]) for s in ("train", "val", "test")] == [3200, 800, 1000]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first["test"], again["test"], strict=True))
    assert first["train"][0][0].shape == (40, 1)


def bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    short = write_series(tmp / "short.csv", n=20)
    (tmp / "empty.txt").write_text("  \n", encoding="utf-8")
    (tmp / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    series = write_series(tmp / "ok.csv")
    return [
        (["task=forecast", f"task.path={tmp / 'missing.csv'}"], f"task.path={tmp / 'missing.csv'}: no such file"),
        (["task=language", f"task.path={tmp / 'missing.txt'}"], f"task.path={tmp / 'missing.txt'}: no such file"),
        (["task.dataset=Nope"], "task.dataset=Nope: not a classification set aeon ships; available: ACSF1,"),
        (["task=forecast", "task.dataset=nope"], "task.dataset=nope: no such series; available: co2, sunspots"),
        (["task=language", "task.dataset=nope"], "task.dataset=nope: no such corpus; available: pydoc"),
        (["task=forecast", f"task.path={series}", "task.target=nope"], "task.target=nope: no column 'nope'"),
        (
            ["task=forecast", f"task.path={series}", "task.target=sales,note"],
            "task.target=sales,note: column 'note' is not numeric (160 values such as 'ok')",
        ),
        (["task=forecast", f"task.path={series}", "task.time_column=when"], "task.time_column=when: no such column"),
        (
            ["task=forecast", f"task.path={short}", "task.window=12"],
            "task.window=12, task.horizon=4: the series has 20 rows",
        ),
        (["task=language", f"task.path={tmp / 'empty.txt'}"], f"task.path={tmp / 'empty.txt'}: the file holds no text"),
        (["task=language", f"task.path={tmp / 'latin1.txt'}"], "not UTF-8 text (byte 3 is 0xe9)"),
    ]


def test_bad_data_is_one_line_exit_2_and_no_run(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "mlflow.db"
    for overrides, expected in bad_inputs(tmp_path):
        for command in ("prune", "search"):
            assert cli.main([command, *overrides, f"tracking.uri=sqlite:///{store}"]) == 2, overrides
            err = capsys.readouterr().err
            assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    assert not store.exists()  # every one failed before a run was opened


def test_a_search_on_a_lower_is_better_task_orients_its_front(tiny, files, tmp_path: Path, monkeypatch) -> None:
    from pipeline import search

    monkeypatch.chdir(tmp_path)
    cfg = tiny(*task_overrides("forecast", files), "search.n_trials=4", "search.study=fc")
    table = search.run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    trials = client.search_runs(["1"], filter_string="tags.`pipeline.role` = 'trial'")
    points = {r.info.run_id: (r.data.metrics["val_rmse"], r.data.metrics["sparsity"]) for r in trials}

    def beaten(p: tuple[float, float]) -> bool:  # lower rmse and higher sparsity are better
        return any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points.values())

    expected = {rid for rid, p in points.items() if not beaten(p)}
    assert len(points) == 4 and set(table.loc[table["pareto"], "run_id"]) == expected
    assert {r.info.run_id for r in trials if r.data.tags["pareto"] == "true"} == expected


def test_structured_language_model_compacts_to_the_same_per_step_outputs(tiny, files) -> None:
    cfg = tiny(
        *task_overrides("language", files),
        "model.num_layers=2",
        "pruning.granularity=structured",
        "pruning.scope=local",
        "pruning.amount=0.5",
        "pruning.include_embedding=true",
    )
    result = runner.run(cfg, "prune")
    net = load_model(result.run_id, cfg.tracking.uri).eval()
    small = load_model(result.run_id, cfg.tracking.uri, "compacted_model").eval()
    assert "embed.weight" in dict(net.named_parameters()) and small.config["hidden_size"] == [4, 4]
    data = TASKS["language"].build(cfg.task, cfg.train.seed)
    with torch.no_grad():
        for x, lengths, _ in data.test_dataloader():
            assert torch.allclose(small(x, lengths), net(x, lengths), atol=1e-5)
