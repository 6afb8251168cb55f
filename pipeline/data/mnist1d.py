"""MNIST-1D: ten digit templates as 1-D signals of 40 steps, shifted, scaled, sheared and noised.

The `mnist1d` package generates it locally (4000 train, 1000 test, seed 42 as in the paper); the
result is cached as an .npz file in `task.cache_dir`, so only the first run pays for the generation.
Validation is a stratified, seeded share of train.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from pipeline.data import TaskSpec
from pipeline.data.base import Split, SplitData
from pipeline.errors import DataError

VERSION = "mnist1d-default-seed42"  # the cache file's name: the generator's default arguments


def cache_dir(configured: str | None) -> Path:
    """Where generated data is kept: task.cache_dir, else $XDG_CACHE_HOME/rnn-pruning (~/.cache/...)."""
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnn-pruning"


def generate(folder: Path) -> dict[str, np.ndarray]:
    """The default MNIST-1D arrays x, y, x_test, y_test, generated once and then read from the cache."""
    path = folder / f"{VERSION}.npz"
    if not path.is_file():
        from mnist1d.data import get_dataset_args, make_dataset

        data = make_dataset(get_dataset_args())
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial.npz")
            np.savez(partial, **{k: data[k] for k in ("x", "y", "x_test", "y_test")})
            partial.replace(path)  # never leave a half-written cache behind
        except OSError as err:
            raise DataError(f"task.cache_dir={folder}: cannot write the generated data ({err.strerror})") from None
    with np.load(path) as saved:
        return {k: saved[k] for k in saved.files}


class MNIST1DData(SplitData):
    """Sequences of 40 steps with one channel, and digit classes 0-9."""

    def load(self) -> dict[str, Split]:
        data = generate(cache_dir(self.task.cache_dir))
        idx_train, idx_val = train_test_split(
            np.arange(len(data["y"])), test_size=self.task.val_fraction, stratify=data["y"], random_state=self.seed
        )

        def encode(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> Split:
            return [(torch.tensor(x[i], dtype=torch.float32).unsqueeze(-1), torch.tensor(int(y[i]))) for i in idx]

        return {
            "train": encode(data["x"], data["y"], idx_train),
            "val": encode(data["x"], data["y"], idx_val),
            "test": encode(data["x_test"], data["y_test"], np.arange(len(data["y_test"]))),
        }

    def describe(self, splits: dict[str, Split]) -> TaskSpec:
        return TaskSpec(input_size=1, num_outputs=10)
