"""Option fields and their validity checks: each check returns an error phrase, or None when valid."""

from __future__ import annotations

import copy
import importlib
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
