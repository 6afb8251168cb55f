"""Tasks: each family gives a LightningDataModule that also describes itself with a TaskSpec."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lightning.pytorch as pl


@dataclass(frozen=True)
class TaskSpec:
    """What a model needs to know about its task: shapes, and which metric says how good it is."""

    input_size: int
    num_outputs: int
    metric: str  # logged as val_<metric> and test_<metric>
    direction: str  # "max" or "min": which way the metric improves


def _speech(**kwargs) -> pl.LightningDataModule:
    from pipeline.data.speech import SpeechData

    return SpeechData(**kwargs)


TASKS: dict[str, Callable[..., pl.LightningDataModule]] = {
    "speech": _speech,
}
