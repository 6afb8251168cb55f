"""Losses and quality metrics of the tasks, as sums over a batch, so whole splits are scored exactly.

Every entry returns (sum over the batch, number of terms); `evaluate` adds both up over a loader and
divides once, so equal predictions give equal figures (a mean of float32 batch means would differ in the
last digits) and padded steps (target `IGNORE`) count nowhere. A metric knows which way it improves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE = -100  # the target of a padded time step (cross-entropy's ignore_index)
Total = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def cross_entropy_total(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Summed cross-entropy (nats) of logits (B, V) or (B, T, V), over targets that are not IGNORE."""
    total = F.cross_entropy(output.flatten(0, -2), target.flatten(), ignore_index=IGNORE, reduction="sum")
    return total, (target != IGNORE).sum()


def squared_error_total(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Summed squared error over every predicted value."""
    return (output - target).pow(2).sum(), torch.tensor(target.numel())


def absolute_error_total(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Summed absolute error over every predicted value."""
    return (output - target).abs().sum(), torch.tensor(target.numel())


def correct_total(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Examples (or steps) whose highest logit is the target class."""
    counted = target != IGNORE
    return ((output.argmax(-1) == target) & counted).sum(), counted.sum()


LOSSES: dict[str, Total] = {"cross_entropy": cross_entropy_total, "mse": squared_error_total}


def mean_loss(name: str, output: Tensor, target: Tensor) -> Tensor:
    """The training loss: the named loss averaged over its terms."""
    total, count = LOSSES[name](output, target)
    return total / count.clamp(min=1)


@dataclass(frozen=True)
class Metric:
    """A quality metric: a batch sum, which way it improves, and how its mean becomes the figure."""

    total: Total
    direction: str  # "max" or "min"
    finish: Callable[[float], float] = float
    scaled: bool = False  # measured in the targets' own units (regression targets are standardised)


METRICS: dict[str, Metric] = {
    "accuracy": Metric(correct_total, "max"),
    "rmse": Metric(squared_error_total, "min", math.sqrt, scaled=True),
    "mae": Metric(absolute_error_total, "min", scaled=True),
    "bpc": Metric(cross_entropy_total, "min", lambda nats: nats / math.log(2)),  # bits per character
}


@dataclass(frozen=True)
class Scoring:
    """How a task is scored: its loss, its metrics (the first is the quality) and the targets' scale."""

    loss: str = "cross_entropy"
    metrics: Sequence[str] = ("accuracy",)
    scale: Sequence[float] | None = None  # per output: standardised target * scale = target in its units

    @torch.no_grad()
    def evaluate(self, net: nn.Module, loader: Iterable[tuple[Tensor, Tensor, Tensor]]) -> dict[str, float]:
        """Loss and every metric of `net` over a whole loader; restores the training mode."""
        was_training = net.training
        device = next(net.parameters(), torch.empty(0)).device  # a quantized net may hold no Parameters
        scale = None if self.scale is None else torch.tensor(self.scale, device=device)
        sums = {name: [0.0, 0] for name in ("loss", *self.metrics)}
        net.eval()
        for x, lengths, y in loader:
            output, y = net(x.to(device), lengths), y.to(device)
            for name, (total, count) in self._totals(output, y, scale):
                sums[name][0] += float(total)
                sums[name][1] += int(count)
        net.train(was_training)
        out = {"loss": sums["loss"][0] / max(sums["loss"][1], 1)}
        for name in self.metrics:
            out[name] = METRICS[name].finish(sums[name][0] / max(sums[name][1], 1))
        return out

    def _totals(self, output: Tensor, y: Tensor, scale: Tensor | None) -> Iterable[tuple[str, tuple[Tensor, Tensor]]]:
        yield "loss", LOSSES[self.loss](output, y)
        for name in self.metrics:
            metric = METRICS[name]
            if metric.scaled and scale is not None:
                yield name, metric.total(output * scale, y * scale)
            else:
                yield name, metric.total(output, y)
