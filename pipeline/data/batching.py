"""Batching shared by the tasks: variable-length padding (packed later by the model) and a resumable shuffle."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Sampler

from pipeline.metrics import IGNORE


def pad_collate(batch: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
    """Stack (sequence (T_i, C) or token ids (T_i,), target) pairs into padded inputs (B, T[, C]), lengths
    (B,) and targets: one per example (B, ...), or per step (B, T) padded with IGNORE."""
    sequences, targets = zip(*batch, strict=True)
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    per_step = targets[0].dim() == 1 and not targets[0].is_floating_point()
    y = pad_sequence(list(targets), batch_first=True, padding_value=IGNORE) if per_step else torch.stack(targets)
    return pad_sequence(list(sequences), batch_first=True), lengths, y


class EpochShuffle(Sampler[int]):
    """A shuffle that depends only on (seed, epoch).

    torch's RandomSampler draws from the global RNG, so a run resumed from a checkpoint would see
    other batches than the uninterrupted run; Lightning calls `set_epoch` on samplers that have it.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n
