"""Speech / sequence classification on the UEA/UCR sets that aeon ships (default: JapaneseVowels).

Uni- or multivariate, equal or variable length. `task.path` may name a folder holding a set of one's own
as `<dataset>_TRAIN.ts` and `<dataset>_TEST.ts`. The official train/test split is kept; validation is a
stratified, seeded share of train; channels are standardised with statistics of the training share only;
sequences keep their own lengths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from pipeline.data import TaskSpec
from pipeline.data.base import Split, SplitData
from pipeline.errors import DataError


def shipped() -> list[str]:
    """The classification sets aeon ships (those whose training file declares class labels)."""
    from aeon import datasets

    root = Path(datasets.__file__).parent / "data"
    return sorted(
        f.name[: -len("_TRAIN.ts")]
        for f in root.glob("*/*_TRAIN.ts")
        if f.with_name(f.name.replace("_TRAIN", "_TEST")).is_file() and _labelled(f)
    )


def _labelled(path: Path) -> bool:
    with path.open(errors="replace") as lines:
        header = [line.lower() for line, _ in zip(lines, range(200), strict=False) if line.startswith("@")]
    return any(line.startswith("@classlabel true") for line in header)


def load_aeon(name: str, split: str, folder: str | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """A UEA/UCR classification split as a list of (channels, length) arrays and string labels."""
    from aeon.datasets import load_classification

    if folder is None and name not in shipped():
        raise DataError(f"task.dataset={name}: not a classification set aeon ships; available: {', '.join(shipped())}")
    if folder is not None and not (Path(folder) / f"{name}_{split.upper()}.ts").is_file():
        raise DataError(f"task.path={folder}: no {name}_{split.upper()}.ts there (set task.dataset to its prefix)")
    try:
        X, y = load_classification(name, split=split, extract_path=folder)
    except Exception as err:  # aeon's parser errors are long; one line names the file
        cause = " ".join(str(err).split())[:200]
        raise DataError(f"task.dataset={name}: cannot read its {split} split ({cause})") from None
    X = [np.asarray(x, dtype=np.float32) for x in X]
    if not all(np.isfinite(x).all() for x in X):
        raise DataError(f"task.dataset={name}: the {split} split has missing values; fill them in first")
    return X, np.asarray(y).astype(str)


class SpeechData(SplitData):
    """Padded sequences (B, T, C), lengths and class indices."""

    def load(self) -> dict[str, Split]:
        name, folder = self.task.dataset, self.task.path
        X_train, y_train = load_aeon(name, "train", folder)
        X_test, y_test = load_aeon(name, "test", folder)
        classes = {c: i for i, c in enumerate(sorted(set(y_train)))}
        if unknown := sorted(set(y_test) - set(classes)):
            raise DataError(f"task.dataset={name}: test labels {unknown[:5]} never occur in train")
        try:
            idx_train, idx_val = train_test_split(
                np.arange(len(X_train)), test_size=self.task.val_fraction, stratify=y_train, random_state=self.seed
            )
        except ValueError as err:
            raise DataError(f"task.val_fraction={self.task.val_fraction}: cannot split {name} ({err})") from None
        fit = np.concatenate([X_train[i] for i in idx_train], axis=1)  # (C, total time steps)
        mean, std = fit.mean(axis=1, keepdims=True), fit.std(axis=1, keepdims=True) + 1e-8
        self.encoding = {"classes": list(classes), "mean": mean[:, 0].tolist(), "std": std[:, 0].tolist()}

        def encode(X: list[np.ndarray], y: np.ndarray, idx: np.ndarray) -> Split:
            return [(torch.from_numpy(((X[i] - mean) / std).T.copy()), torch.tensor(classes[y[i]])) for i in idx]

        return {
            "train": encode(X_train, y_train, idx_train),
            "val": encode(X_train, y_train, idx_val),
            "test": encode(X_test, y_test, np.arange(len(X_test))),
        }

    def describe(self, splits: dict[str, Split]) -> TaskSpec:
        x, _ = splits["train"][0]
        return TaskSpec(input_size=x.shape[1], num_outputs=len(self.encoding["classes"]), encoding=self.encoding)
