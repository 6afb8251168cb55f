"""Configuration: defaults, precedence, and one clear line with exit code 2 for every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import cli, conf, config
from pipeline.errors import ConfigError


def test_defaults_are_valid_and_match_the_conf_selection() -> None:
    cfg = conf.load()
    assert (cfg.task.name, cfg.model.cell, cfg.pruning.schedule) == ("speech", "lstm", "iterative")
    for key, _, _ in config.options():
        conf.validate_value(cfg, key)


def test_precedence_group_file_then_config_file_then_overrides(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text("model: {hidden_size: 33}\npruning: {amount: 0.5}\n")
    cfg = conf.load(["model=gru", "pruning.amount=0.75", "train.lr=1", "train.weight_decay=1e-4"], extra)
    assert cfg.train.weight_decay == 1e-4
    assert cfg.model.cell == "gru"  # from conf/model/gru.yaml
    assert cfg.model.hidden_size == 33  # from the file
    assert cfg.pruning.amount == 0.75  # the override wins over the file
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # ints are accepted for floats


def test_null_clears_an_optional_value() -> None:
    assert conf.load(["pruning.threshold=0.1"]).pruning.threshold == 0.1
    assert conf.load(["pruning.threshold=null"]).pruning.threshold is None


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.hiden_size=3", "model.hiden_size=3: unknown key; model keys are: cell, hidden_size"),
        ("nosuch.key=1", "nosuch.key=1: unknown key; keys start with one of: task"),
        ("model.hidden_size=abc", "model.hidden_size='abc': expected int"),
        ("model.hidden_size=2.5", "model.hidden_size=2.5: expected int"),
        ("model.bidirectional=3", "model.bidirectional=3: expected bool"),
        ("pruning.amount=1.5", "pruning.amount=1.5: must be in (0, 1)"),
        ("pruning.amount=0", "pruning.amount=0.0: must be in (0, 1)"),
        ("pruning.iterations=0", "pruning.iterations=0: must be >= 1"),
        ("pruning.method=foo", "pruning.method='foo': must be one of: gradient, l2, magnitude, random, taylor"),
        ("pruning.granularity=x", "pruning.granularity='x': must be one of: structured, unstructured"),
        ("pruning.tolerance=-1", "pruning.tolerance=-1.0: must be >= 0.0"),
        ("pruning.rewind=99", "pruning.rewind=99: must be <= train.epochs (60)"),
        ("train.epochs=0", "train.epochs=0: needs train.init_from"),
        ("pruning.scope=everywhere", "pruning.scope='everywhere': must be one of: global, local"),
        ("pruning.schedule=x", "pruning.schedule='x': must be one of: agp, constant, iterative, oneshot"),
        ("model.cell=transformer", "model.cell='transformer': must be one of: gru, lstm, rnn"),
        ("model=foo", "model=foo: no conf/model/foo.yaml; available: gru, lstm, rnn"),
        ("amount", "'amount': overrides take the form key=value"),
    ],
)
def test_bad_input_is_one_line_naming_key_value_and_allowed(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        conf.load([override])
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_bad_config_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        conf.load([], bad)
    with pytest.raises(ConfigError, match=r"missing\.yaml: no such config file"):
        conf.load([], tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "argv",
    [
        ["prune", "pruning.amount=2"],
        ["train", "pruning.method=foo"],
        ["prune", "pruning.iterations=0"],
        ["compare"],
        ["search", "search.n_trials=0"],
    ],
)
def test_cli_exits_2_with_one_line_and_creates_no_run(argv, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "mlflow.db").exists()


def test_cli_splits_one_quoted_overrides_parameter_like_mlflow_run_passes_it() -> None:
    command, cfg = cli.parse(["prune", "pruning.amount=0.5 model.cell=gru", ""])
    assert (command, cfg.pruning.amount, cfg.model.cell) == ("prune", 0.5, "gru")
    _, cfg = cli.parse(["search", "search.space={pruning.amount: {low: 0.5, high: 0.9}}"])
    assert cfg.search.space == {"pruning.amount": {"low": 0.5, "high": 0.9}}


def test_readme_documents_every_key() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [key for key, _, _ in config.options() if f"| `{key}` |" not in readme]
    assert not missing, f"README.md lacks rows for {missing}"
