"""What every task's datamodule shares: three splits of (input, target) pairs and their loaders.

A family says how its splits are made (`load`) and what its task is (`describe`); batching, the
resumable shuffle and the caching of the splits and the spec are here.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import lightning.pytorch as pl
from torch import Tensor
from torch.utils.data import DataLoader

from pipeline.data import TaskSpec
from pipeline.data.batching import EpochShuffle, pad_collate

if TYPE_CHECKING:
    from pipeline.config import TaskConfig

Split = list[tuple[Tensor, Tensor]]


class SplitData(pl.LightningDataModule):
    """Train/val/test loaders of (padded inputs, lengths, targets) over splits made once by `load`."""

    def __init__(self, task: TaskConfig, seed: int = 0) -> None:
        super().__init__()
        self.task, self.seed, self.batch_size = task, seed, task.batch_size

    def load(self) -> dict[str, Split]:
        """The "train", "val" and "test" splits; raises DataError for data that cannot be used."""
        raise NotImplementedError

    def describe(self, splits: dict[str, Split]) -> TaskSpec:
        """Shapes, loss and metrics of the task, once `load` has made the splits."""
        raise NotImplementedError

    @cached_property
    def splits(self) -> dict[str, Split]:
        return self.load()

    @cached_property
    def spec(self) -> TaskSpec:
        """The task's description (made once: the forecast baselines take some computing)."""
        return self.describe(self.splits)

    def train_dataloader(self) -> DataLoader:
        data = self.splits["train"]
        return DataLoader(data, self.batch_size, sampler=EpochShuffle(len(data), self.seed), collate_fn=pad_collate)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["val"], self.batch_size, collate_fn=pad_collate)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["test"], self.batch_size, collate_fn=pad_collate)
