"""Tasks: each family gives a LightningDataModule that also describes itself with a TaskSpec.

A family's module is imported only when it is used (aeon, statsmodels and mnist1d are slow to import).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl

from pipeline.metrics import METRICS

if TYPE_CHECKING:
    from pipeline.config import TaskConfig


@dataclass(frozen=True)
class TaskSpec:
    """What a model needs to know about its task: shapes, loss, and which metrics say how good it is."""

    input_size: int  # channels per step, or with `tokens` the vocabulary size
    num_outputs: int  # per example, or with `per_step` per time step
    loss: str = "cross_entropy"
    metrics: Sequence[str] = ("accuracy",)  # logged as val_<m> and test_<m>; the first is the quality
    tokens: bool = False  # inputs are token ids (embedded by the model)
    per_step: bool = False  # one prediction per time step instead of one per sequence
    scale: Sequence[float] | None = None  # standardised targets * scale = targets in their own units
    baseline: Mapping[str, float] = field(default_factory=dict)  # a reference method's figures, logged beside
    encoding: Mapping[str, Any] = field(default_factory=dict)  # how raw data becomes inputs: logged as task.json

    @property
    def metric(self) -> str:
        """The quality metric."""
        return self.metrics[0]

    @property
    def direction(self) -> str:
        """Which way the quality improves: "max" or "min"."""
        return METRICS[self.metric].direction


@dataclass(frozen=True)
class Task:
    """A task family: where its datamodule lives, and what it asks of the model."""

    datamodule: str  # "module:Class", built with (the task config, the seed)
    causal: bool = False  # predicts the next step: a backward direction would read the answer
    ordered: bool = False  # val and test are the last shares of one series or text (task.*_fraction)

    def build(self, task: TaskConfig, seed: int) -> pl.LightningDataModule:
        """The family's datamodule for a `task` config section."""
        module, _, name = self.datamodule.partition(":")
        return getattr(importlib.import_module(module), name)(task, seed)


TASKS: dict[str, Task] = {
    "speech": Task("pipeline.data.speech:SpeechData"),
    "mnist1d": Task("pipeline.data.mnist1d:MNIST1DData"),
    "forecast": Task("pipeline.data.forecast:ForecastData", ordered=True),
    "language": Task("pipeline.data.language:LanguageData", causal=True, ordered=True),
}
