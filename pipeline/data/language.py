"""Character-level language modelling on any UTF-8 text: predict every next character; bits per character.

Text: a user's file (`task.path`) or a corpus that ships with Python itself (`task.dataset=pydoc`: the
documentation topics of the standard library's `pydoc_data`, about 0.46 M characters of English prose
and code), so it runs offline. The text is cut into contiguous train < val < test segments; sequences
are consecutive chunks of `task.window` characters, each predicting the chunk shifted by one. The
vocabulary is the training segment's characters; others map to one unknown id (0).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from pipeline.config import TaskConfig
from pipeline.data import TaskSpec
from pipeline.data.base import Split, SplitData
from pipeline.errors import DataError


def _pydoc() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


CORPORA: dict[str, Callable[[], str]] = {"pydoc": _pydoc}


def read_text(task: TaskConfig) -> str:
    """The whole text: the user's UTF-8 file, or a corpus that ships with Python."""
    if not task.path:
        if task.dataset not in CORPORA:
            available = ", ".join(CORPORA)
            raise DataError(f"task.dataset={task.dataset}: no such corpus; available: {available} (or task.path)")
        return CORPORA[task.dataset]()
    path = Path(task.path)
    if not path.is_file():
        raise DataError(f"task.path={path}: no such file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        byte = err.object[err.start]
        raise DataError(f"task.path={path}: not UTF-8 text (byte {err.start} is {byte:#04x})") from None
    if not text.strip():
        raise DataError(f"task.path={path}: the file holds no text")
    return text


def chunks(ids: torch.Tensor, window: int) -> Split:
    """Consecutive (input, next-character target) pairs of at most `window` steps covering `ids`."""
    out = []
    for start in range(0, len(ids) - 1, window):
        end = min(start + window, len(ids) - 1)  # the last character is a target only
        out.append((ids[start:end], ids[start + 1 : end + 1]))
    return out


class LanguageData(SplitData):
    """Token ids (B, T) and next-token targets (B, T), padded with IGNORE."""

    def load(self) -> dict[str, Split]:
        text, task = read_text(self.task), self.task
        n = len(text)
        val, test = n - round(n * (task.val_fraction + task.test_fraction)), n - round(n * task.test_fraction)
        if min(val, test - val, n - test) < 2 or val < task.window + 1:
            raise DataError(
                f"task.path={task.path or task.dataset}: {n} characters are too few for train, val and test "
                f"segments (fractions {task.val_fraction}, {task.test_fraction}) and task.window={task.window}"
            )
        self.vocabulary = sorted(set(text[:val]))
        index = {c: i + 1 for i, c in enumerate(self.vocabulary)}  # 0: a character unseen in training
        ids = torch.tensor([index.get(c, 0) for c in text], dtype=torch.long)
        return {
            "train": chunks(ids[:val], task.window),
            "val": chunks(ids[val:test], task.window),
            "test": chunks(ids[test:], task.window),
        }

    def describe(self, splits: dict[str, Split]) -> TaskSpec:
        size = len(self.vocabulary) + 1  # `load` found the vocabulary
        encoding = {"vocabulary": "".join(self.vocabulary), "unknown": 0}  # character i of it has id i + 1
        return TaskSpec(
            input_size=size, num_outputs=size, metrics=("bpc",), tokens=True, per_step=True, encoding=encoding
        )
