"""Speech / sequence classification on UEA/UCR sets that aeon ships (default: JapaneseVowels).

The official train/test split is kept; validation is a stratified, seeded share of train; channels are
standardised with statistics of the training share only; sequences keep their own lengths.
"""

from __future__ import annotations

from functools import cached_property

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.utils.data import DataLoader

from pipeline.data import TaskSpec
from pipeline.data.batching import EpochShuffle, pad_collate

Split = list[tuple[Tensor, Tensor]]


def load_aeon(name: str, split: str) -> tuple[list[np.ndarray], np.ndarray]:
    """A UEA/UCR classification split as a list of (channels, length) arrays and string labels."""
    from aeon.datasets import load_classification

    X, y = load_classification(name, split=split)
    return [np.asarray(x, dtype=np.float32) for x in X], np.asarray(y).astype(str)


class SpeechData(pl.LightningDataModule):
    """Train/val/test loaders of (padded sequences, lengths, class index)."""

    def __init__(
        self, dataset: str = "JapaneseVowels", val_fraction: float = 0.2, batch_size: int = 32, seed: int = 0
    ) -> None:
        super().__init__()
        self.dataset, self.val_fraction, self.batch_size, self.seed = dataset, val_fraction, batch_size, seed

    @cached_property
    def splits(self) -> dict[str, Split]:
        X_train, y_train = load_aeon(self.dataset, "train")
        X_test, y_test = load_aeon(self.dataset, "test")
        classes = {c: i for i, c in enumerate(sorted(set(y_train)))}
        idx_train, idx_val = train_test_split(
            np.arange(len(X_train)), test_size=self.val_fraction, stratify=y_train, random_state=self.seed
        )
        fit = np.concatenate([X_train[i] for i in idx_train], axis=1)  # (C, total time steps)
        mean, std = fit.mean(axis=1, keepdims=True), fit.std(axis=1, keepdims=True) + 1e-8

        def encode(X: list[np.ndarray], y: np.ndarray, idx: np.ndarray) -> Split:
            return [(torch.from_numpy(((X[i] - mean) / std).T.copy()), torch.tensor(classes[y[i]])) for i in idx]

        return {
            "train": encode(X_train, y_train, idx_train),
            "val": encode(X_train, y_train, idx_val),
            "test": encode(X_test, y_test, np.arange(len(X_test))),
        }

    @property
    def spec(self) -> TaskSpec:
        x, _ = self.splits["train"][0]
        n_classes = len({int(y) for _, y in self.splits["train"]})
        return TaskSpec(input_size=x.shape[1], num_outputs=n_classes, metric="accuracy", direction="max")

    def train_dataloader(self) -> DataLoader:
        data = self.splits["train"]
        return DataLoader(data, self.batch_size, sampler=EpochShuffle(len(data), self.seed), collate_fn=pad_collate)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["val"], self.batch_size, collate_fn=pad_collate)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["test"], self.batch_size, collate_fn=pad_collate)
