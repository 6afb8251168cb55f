"""Shared fixtures: tiny real configs (JapaneseVowels, a few hidden units, a few epochs) and tmp stores."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
import torch

from pipeline import conf, config

TINY = [
    "model.hidden_size=8",
    "train.epochs=2",
    "pruning.retrain_epochs=1",
    "pruning.iterations=3",
    "task.batch_size=64",
]


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Two intra-op threads on two busy cores spin-wait: a tiny LSTM step then takes 100x longer.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")


@pytest.fixture
def tiny(tmp_path: Path):
    """Build a tiny Config whose stores and checkpoints live in tmp_path."""

    def make(*overrides: str) -> config.Config:
        return conf.load(
            [
                *TINY,
                f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
                f"train.checkpoint_dir={tmp_path / 'checkpoints'}",
                *overrides,
            ]
        )

    return make
