"""The model: a recurrent backbone (rnn | lstm | gru) with a task head, and its LightningModule.

`RNNNet` is a plain, scriptable nn.Module (what gets exported); `RNNModule` adds the loss, the metrics
and the optimizer. Neither knows anything of MLflow, Optuna or pruning: a pruning callback is handed in
and carried by the module through `configure_callbacks`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from pipeline.metrics import METRICS, Scoring, mean_loss

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNNNet(nn.Module):
    """Recurrent layers over packed sequences; a linear head on the last layer's final states, or with
    `per_step` on every step's output (language modelling). With `vocab_size` the inputs are token ids,
    embedded into `input_size` features.

    Each layer is its own single-layer `nn.RNN`/`nn.LSTM`/`nn.GRU`, so a compacted network can keep a
    different number of hidden units per layer (`hidden_size` may be a list, one entry per layer).
    """

    def __init__(
        self,
        cell: str = "lstm",
        input_size: int = 12,
        hidden_size: int | list[int] = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        num_outputs: int = 9,
        vocab_size: int = 0,
        per_step: bool = False,
    ) -> None:
        super().__init__()
        self.config = {  # the constructor arguments: enough to rebuild this network anywhere
            "cell": cell,
            "input_size": input_size,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "bidirectional": bidirectional,
            "dropout": dropout,
            "num_outputs": num_outputs,
            "vocab_size": vocab_size,
            "per_step": per_step,
        }
        sizes = list(hidden_size) if isinstance(hidden_size, list | tuple) else [hidden_size] * num_layers
        self.cell, self.directions, self.per_step = cell, 2 if bidirectional else 1, per_step
        self.embed = nn.Embedding(vocab_size, input_size) if vocab_size else None
        inputs = [input_size] + [self.directions * h for h in sizes[:-1]]
        self.layers = nn.ModuleList(
            CELLS[cell](i, h, batch_first=True, bidirectional=bidirectional) for i, h in zip(inputs, sizes, strict=True)
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.directions * sizes[-1], num_outputs)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(B, T, C) padded inputs, or (B, T) token ids, and (B,) lengths -> (B, num_outputs) outputs,
        or with `per_step` (B, T, num_outputs)."""
        if self.embed is not None:
            x = self.embed(x)  # (B, T) -> (B, T, C)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        for i, layer in enumerate(self.layers):
            if i > 0:  # dropout between layers, on the packed steps only
                packed = PackedSequence(
                    self.drop(packed.data), packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
                )
            packed, _ = layer(packed)
        # Read the final states off the last layer's outputs rather than its returned state: the same values,
        # and a packed output that is consumed is what lets the ONNX exporter map packing to sequence_lens.
        out, _ = pad_packed_sequence(packed, batch_first=True)  # (B, T, D * H), zeros past each end
        if self.per_step:
            return self.head(self.drop(out))  # (B, T, num_outputs)
        index = (lengths.to(out.device) - 1).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
        features = out.gather(1, index).squeeze(1)  # (B, D * H) at each sequence's last step
        if self.directions == 2:  # the reverse direction ends at t = 0
            size = out.shape[-1] // 2
            features = torch.cat([features[:, :size], out[:, 0, size:]], dim=1)
        return self.head(self.drop(features))


class RNNModule(pl.LightningModule):
    """Trains an RNNNet on one task with AdamW: the task's loss, and its metrics (the first is its quality)."""

    def __init__(
        self,
        loss: str = "cross_entropy",
        metrics: Sequence[str] = ("accuracy",),
        scale: Sequence[float] | None = None,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        seed: int = 0,
        callbacks: Sequence[pl.Callback] = (),
        **net: Any,
    ) -> None:
        """`net`: the RNNNet's arguments (cell, input_size, hidden_size, ...)."""
        super().__init__()
        self.save_hyperparameters(ignore=["callbacks"])  # the network's arguments are kept flat, beside the rest
        self.net = RNNNet(**net)
        self.scoring = Scoring(loss, tuple(metrics), None if scale is None else tuple(scale))
        self.metric, self.extra_callbacks = metrics[0], list(callbacks)
        self.direction = METRICS[self.metric].direction

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.net(x, lengths)

    def loss(self, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """The training loss of one batch (also used to score weights by their gradients)."""
        x, lengths, y = batch
        return mean_loss(self.scoring.loss, self(x, lengths), y)

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[2]))
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        self.log("val_loss", self.loss(batch), on_epoch=True, batch_size=len(batch[2]))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Dropout draws from the global RNG, which other code (e.g. each DataLoader iterator) also draws
        # from; seeding it per optimizer step makes a run resumed from a checkpoint retrain identically.
        torch.manual_seed(self.hparams.seed * 1_000_003 + self.global_step)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def configure_callbacks(self) -> list[pl.Callback]:
        return self.extra_callbacks

    def evaluate(self, loader: Iterable[tuple[Tensor, Tensor, Tensor]]) -> dict[str, float]:
        """Loss and every metric of the network over a whole loader."""
        return self.scoring.evaluate(self.net, loader)
