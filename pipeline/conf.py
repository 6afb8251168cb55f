"""Loading a Config: the conf/ files, an optional YAML file and `key=value` overrides, every value checked.

Precedence, lowest first: dataclass defaults < `conf/config.yaml` (which selects one file per group,
e.g. `conf/model/lstm.yaml`; a group file may also set keys of other groups it needs, which win over
those groups' files) < `--config FILE` < `key=value` overrides. `group=name` on the command
line selects another group file (`model=gru`). Every value is checked before any work starts; a bad
one raises `ConfigError` with one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline.checks import is_float, type_name, type_ok
from pipeline.config import CONF_DIR, GROUPS, Config
from pipeline.errors import ConfigError


def load(overrides: Iterable[str] = (), config_file: str | Path | None = None, conf_dir: Path = CONF_DIR) -> Config:
    """Build a validated Config from the conf/ files, an optional YAML file and `key=value` overrides."""
    pairs = [_split(item) for item in overrides]
    base = _read_yaml(conf_dir / "config.yaml") if (conf_dir / "config.yaml").exists() else {}
    selected = {**base.pop("defaults", {}), **{k: v for k, v in pairs if k in GROUPS}}
    cfg, needs = Config(), []
    for group, name in selected.items():
        values = _group_file(conf_dir, group, name)
        # A group file may also set keys of other groups that it needs (language: a one-way model).
        needs += [({key: values.pop(key)}, f"{group}={name}") for key in list(values) if key in GROUPS]
        _apply(cfg, {group: values}, source=f"{group}={name}")
    for tree, source in needs:
        _apply(cfg, tree, source)
    _apply(cfg, base, source=str(conf_dir / "config.yaml"))
    if config_file is not None:
        _apply(cfg, _read_yaml(Path(config_file)), source=str(config_file))
    for key, raw in pairs:
        if key not in GROUPS:
            _set(cfg, key, _parse_scalar(raw))
    return cfg.check()


def derive(cfg: Config, values: Mapping[str, Any]) -> Config:
    """A validated copy of cfg with `group.key -> value` set (e.g. one search trial's recipe)."""
    out = copy.deepcopy(cfg)
    for key, value in values.items():
        _set(out, key, value)
    return out.check()


def validate_value(cfg: Config, key: str) -> None:
    """Check one `group.field` of cfg against its type and range."""
    group, name = key.split(".", 1)
    section = getattr(cfg, group)
    f = {f.name: f for f in dataclasses.fields(section)}[name]
    value = getattr(section, name)
    expected = typing.get_type_hints(type(section))[name]
    if not type_ok(value, expected):
        raise ConfigError(f"{key}={value!r}: expected {type_name(expected)}")
    check = f.metadata.get("check")
    problem = check(value) if check and value is not None else None
    if problem:
        raise ConfigError(f"{key}={value!r}: {problem}")


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"{item!r}: overrides take the form key=value (see --help for the keys)")
    key, raw = item.split("=", 1)
    return key.strip(), raw


def _parse_scalar(raw: str) -> Any:
    for number in (int, float):  # YAML 1.1 reads `1e-3` as a string
        try:
            return number(raw)
        except ValueError:
            pass
    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        return raw


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of group -> options")
    return data


def _group_file(conf_dir: Path, group: str, name: Any) -> dict[str, Any]:
    path = conf_dir / group / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))
        raise ConfigError(f"{group}={name}: no {path.relative_to(conf_dir.parent)}; available: {', '.join(available)}")
    return _read_yaml(path)


def _apply(cfg: Config, tree: Mapping[str, Any], source: str) -> None:
    for group, values in tree.items():
        if group not in GROUPS:
            raise ConfigError(f"{source}: unknown group {group!r}; groups are {', '.join(GROUPS)}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: {group} must be a mapping of options")
        for name, value in values.items():
            _set(cfg, f"{group}.{name}", value)


def _set(cfg: Config, key: str, value: Any) -> None:
    group, _, name = key.partition(".")
    if group not in GROUPS:
        raise ConfigError(f"{key}={value!r}: unknown key; keys start with one of: {', '.join(GROUPS)}")
    names = [f.name for f in dataclasses.fields(getattr(cfg, group))]
    if name not in names:
        raise ConfigError(f"{key}={value!r}: unknown key; {group} keys are: {', '.join(names)}")
    section = getattr(cfg, group)
    expected = typing.get_type_hints(type(section))[name]
    if is_float(expected) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    setattr(section, name, value)
    validate_value(cfg, key)
