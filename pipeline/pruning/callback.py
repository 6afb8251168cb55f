"""The Lightning callback that runs prune -> retrain rounds inside one `fit`.

Timeline, with D dense epochs, k retrain epochs per round and n rounds (max_epochs = D + n k):

    epochs 0..D-1 dense | prune 1, retrain k | prune 2, retrain k | ... | prune n, retrain k
    round r's result is evaluated when epoch D + r k starts (or when training ends), r = 0 is dense.

Progress is kept in the callback's state (rounds pruned, rounds evaluated) and the masks are buffers of
the model, so a run resumed from any Lightning checkpoint reaches the same rounds and masks.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from pipeline.pruning import masks
from pipeline.pruning.criteria import CRITERIA
from pipeline.pruning.groups import prunable
from pipeline.pruning.schedules import SCHEDULES


class PruningCallback(pl.Callback):
    """Prune with a criterion on a schedule, retrain, evaluate and log every round (step = round)."""

    def __init__(
        self,
        method: str = "magnitude",
        schedule: str = "iterative",
        scope: str = "global",
        amount: float = 0.9,
        threshold: float | None = None,
        iterations: int = 4,
        dense_epochs: int = 10,
        retrain_epochs: int = 5,
        include_head: bool = True,
    ) -> None:
        self.criterion, self.schedule, self.select = CRITERIA[method], SCHEDULES[schedule], masks.SCOPES[scope]
        self.amount, self.threshold, self.iterations = amount, threshold, iterations
        self.dense_epochs, self.retrain_epochs, self.include_head = dense_epochs, retrain_epochs, include_head
        self.pruned = 0  # rounds whose pruning step has run
        self.evaluated = 0  # rounds whose result has been evaluated (round 0 = dense)
        self.history: list[dict[str, float]] = []

    @property
    def total_epochs(self) -> int:
        """The `max_epochs` a Trainer needs to run every round."""
        return self.end_epoch(self.iterations)

    def end_epoch(self, r: int) -> int:
        """The epoch at whose start round r is complete (round r + 1 is pruned then)."""
        return self.dense_epochs + r * self.retrain_epochs

    # --- Lightning hooks: thin, everything else is in plain methods -------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Before any checkpoint is restored, so saved masks load into matching buffers.
        masks.attach(pl_module, prunable(pl_module, self.include_head))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.advance(trainer, pl_module, trainer.current_epoch, prune=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.advance(trainer, pl_module, trainer.current_epoch, prune=False)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        masks.mask_grads(pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        masks.apply(pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"pruned": self.pruned, "evaluated": self.evaluated, "history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pruned, self.evaluated = state_dict["pruned"], state_dict["evaluated"]
        self.history = list(state_dict["history"])

    # --- the rounds -------------------------------------------------------------------------------

    def advance(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, prune: bool) -> None:
        """Evaluate every round finished by `epoch`, then prune if the next round starts now."""
        while self.evaluated <= self.iterations and epoch >= self.end_epoch(self.evaluated):
            self.evaluate(trainer, pl_module, self.evaluated)
            self.evaluated += 1
        if prune and self.pruned < self.iterations and epoch >= self.end_epoch(self.pruned):
            self.pruned += 1
            self.prune(pl_module, self.pruned)

    def prune(self, pl_module: pl.LightningModule, r: int) -> None:
        """Score every prunable weight and shrink the masks to round r's target (or threshold)."""
        params = dict(pl_module.named_parameters())
        current = masks.read(pl_module)
        scores = {name: self.criterion(params[name], params[name].grad) for name in current}
        if self.threshold is not None:
            new = masks.select_threshold(scores, current, self.threshold)
        else:
            new = self.select(scores, current, self.schedule(r, self.iterations, self.amount))
        masks.update(pl_module, new)

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, r: int) -> None:
        """Measure round r on the validation and test splits and log it with step = r."""
        metric = pl_module.metric
        data = trainer.datamodule
        record = {
            "sparsity": masks.sparsity(masks.read(pl_module)),
            f"val_{metric}": pl_module.evaluate(data.val_dataloader())[metric],
            f"test_{metric}": pl_module.evaluate(data.test_dataloader())[metric],
            "nonzero_params": float(masks.nonzero_params(pl_module)),
            "model_bytes": float(masks.model_bytes(pl_module)),
        }
        self.history.append({"round": r, **record})
        for logger in trainer.loggers:
            logger.log_metrics(record, step=r)
        rank_zero_info(
            f"round {r}/{self.iterations}: sparsity {record['sparsity']:.4f}  "
            f"val_{metric} {record[f'val_{metric}']:.4f}  test_{metric} {record[f'test_{metric}']:.4f}"
        )
