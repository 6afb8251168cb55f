"""The model reads packed sequences; the speech task keeps the official split and leaks nothing."""

from __future__ import annotations

import pytest
import torch

from pipeline.config import TaskConfig
from pipeline.data.speech import SpeechData
from pipeline.models import CELLS, RNNNet


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True)])
def test_padding_does_not_reach_the_recurrence(cell: str, layers: int, bidirectional: bool) -> None:
    torch.manual_seed(0)
    net = RNNNet(cell, input_size=3, hidden_size=5, num_layers=layers, bidirectional=bidirectional, num_outputs=4)
    short = torch.randn(1, 4, 3)
    alone = net(short, torch.tensor([4]))
    padded = torch.cat([short, torch.full((1, 6, 3), 99.0)], dim=1)  # garbage after the end
    batch = torch.cat([padded, torch.randn(1, 10, 3)])
    together = net(batch, torch.tensor([4, 10]))
    assert alone.shape == (1, 4)
    assert torch.allclose(together[:1], alone, atol=1e-6)


def test_speech_split_is_stratified_disjoint_and_standardised_on_train_only() -> None:
    data = SpeechData(TaskConfig(val_fraction=0.2), seed=3)
    splits = data.splits
    assert len(splits["train"]) + len(splits["val"]) == 270 and len(splits["test"]) == 370
    assert data.spec.input_size == 12 and data.spec.num_outputs == 9 and data.spec.metric == "accuracy"
    train_labels = torch.stack([y for _, y in splits["train"]])
    val_labels = torch.stack([y for _, y in splits["val"]])
    assert set(val_labels.tolist()) == set(range(9))  # stratified: every speaker in validation
    steps = torch.cat([x for x, _ in splits["train"]])  # (total steps, C)
    assert torch.allclose(steps.mean(0), torch.zeros(12), atol=1e-4)
    assert torch.allclose(steps.std(0, unbiased=False), torch.ones(12), atol=1e-3)
    lengths = {len(x) for x, _ in splits["test"]}
    assert min(lengths) < max(lengths)  # variable length kept
    again = SpeechData(TaskConfig(val_fraction=0.2), seed=3).splits
    assert torch.equal(torch.stack([y for _, y in again["val"]]), val_labels)
    other = SpeechData(TaskConfig(val_fraction=0.2), seed=4).splits
    assert not torch.equal(torch.stack([y for _, y in other["train"]]), train_labels)


def test_shuffle_depends_only_on_seed_and_epoch() -> None:
    loader = SpeechData(TaskConfig(), seed=1).train_dataloader()
    loader.sampler.set_epoch(5)
    first = list(loader.sampler)
    loader.sampler.set_epoch(6)
    assert list(loader.sampler) != first
    loader.sampler.set_epoch(5)
    assert list(loader.sampler) == first
