"""Option fields and their validity checks: each check returns an error phrase, or None when valid; and the
type checks every option goes through."""

from __future__ import annotations

import copy
import importlib
import types
import typing
from collections.abc import Callable
from dataclasses import field
from typing import Any

Check = Callable[[Any], str | None]


def opt(default: Any, help: str, check: Check | None = None) -> Any:
    """A dataclass field with its help text and validity check."""
    if isinstance(default, dict | list):  # a fresh copy per instance
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help, "check": check})
    return field(default=default, metadata={"help": help, "check": check})


def in_open_unit(value: float) -> str | None:
    """In (0, 1)."""
    return None if 0.0 < value < 1.0 else "must be in (0, 1)"


def in_unit_interval(value: float) -> str | None:
    """In [0, 1)."""
    return None if 0.0 <= value < 1.0 else "must be in [0, 1)"


def at_least(low: float) -> Check:
    """At least `low`."""
    return lambda value: None if value >= low else f"must be >= {low}"


def positive(value: float | None) -> str | None:
    """Above zero."""
    return None if value is None or value > 0 else "must be > 0"


def one_of(registry: str) -> Check:
    """A key of the registry `module:NAME`, imported only when checked so the config stays light to load."""

    def check(value: str) -> str | None:
        module, _, name = registry.partition(":")
        allowed = sorted(getattr(importlib.import_module(module), name))
        return None if value in allowed else f"must be one of: {', '.join(allowed)}"

    return check


# --- types of option values ------------------------------------------------------------------------


def is_float(tp: Any) -> bool:
    """The type is float, or a union holding float (an int given for it is widened)."""
    return tp is float or float in typing.get_args(tp)


def type_ok(value: Any, tp: Any) -> bool:
    """The value is of the (union) type; a bool is not taken for an int or a float."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return any(type_ok(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, tp)


def type_name(tp: Any) -> str:
    """The type as an error message names it: `float or null`."""
    args = typing.get_args(tp)
    return " or ".join("null" if a is type(None) else a.__name__ for a in args) if args else tp.__name__
