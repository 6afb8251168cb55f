"""The Lightning callback that runs prune -> retrain rounds inside one `fit`.

Timeline, with D dense epochs, k retrain epochs per round and n rounds (max_epochs = D + n k):

    epochs 0..D-1 dense | prune 1, retrain k | prune 2, retrain k | ... | prune n, retrain k
    round r's result is evaluated when epoch D + r k starts (or when training ends), r = 0 is dense.

With `retrain_steps` a round lasts that many optimizer steps instead (pruning mid-epoch, as AGP does
per step), counted from the end of the dense epochs.

Progress is kept in the callback's state (rounds pruned and evaluated, the rewind point, the stop) and
the masks are buffers of the model, so a run resumed from any Lightning checkpoint reaches the same
rounds and masks. With a tolerance, the rounds stop once validation quality falls more than the
tolerance below dense, and the last round within it is restored as the result.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info

from pipeline.pruning import masks, penalties
from pipeline.pruning.criteria import CRITERIA, mean_abs_grads
from pipeline.pruning.groups import hidden_units, prunable, unit_slots
from pipeline.pruning.schedules import SCHEDULES
from pipeline.pruning.select import GRANULARITIES, rule


class PruningCallback(pl.Callback):
    """Prune with a criterion on a schedule, retrain, evaluate and log every round (step = round).

    Arguments equal the keys of the `pruning` config group, plus the dense epochs and a seed.
    """

    def __init__(
        self,
        method: str = "magnitude",
        granularity: str = "unstructured",
        scope: str = "global",
        schedule: str = "iterative",
        amount: float = 0.9,
        threshold: float | None = None,
        iterations: int = 4,
        retrain_epochs: int = 5,
        retrain_steps: int | None = None,
        include_head: bool = True,
        include_embedding: bool = False,
        grad_batches: int = 8,
        tolerance: float | None = None,
        rewind: int | None = None,
        l1: float = 0.0,
        group_lasso: float = 0.0,
        dense_epochs: int = 10,
        seed: int = 0,
        steps_per_epoch: int | None = None,
    ) -> None:
        self.criterion, self.granularity = CRITERIA[method], GRANULARITIES[granularity]
        self.structured = granularity == "structured"
        self.schedule, self.scope, self.amount, self.threshold = SCHEDULES[schedule], scope, amount, threshold
        self.iterations, self.retrain_epochs, self.dense_epochs = iterations, retrain_epochs, dense_epochs
        if retrain_steps is not None and not steps_per_epoch:
            raise ValueError("retrain_steps needs steps_per_epoch, the optimizer steps of one epoch")
        self.retrain_steps, self.steps_per_epoch = retrain_steps, steps_per_epoch
        # A unit's outgoing columns in the head belong to its group, so structured pruning masks the head.
        self.include_head, self.include_embedding = include_head or self.structured, include_embedding
        self.grad_batches, self.tolerance, self.rewind = grad_batches, tolerance, rewind
        self.l1, self.group_lasso, self.seed = l1, group_lasso, seed
        self.pruned = 0  # rounds whose pruning step has run
        self.evaluated = 0  # rounds whose result has been evaluated (round 0 = dense)
        self.history: list[dict[str, float]] = []
        self.stopped_at: int | None = None  # the round that broke the tolerance
        self.rewind_state: dict[str, torch.Tensor] | None = None
        self._kept: dict[str, torch.Tensor] | None = None  # state of the last round within tolerance

    @property
    def total_epochs(self) -> int:
        """The `max_epochs` a Trainer needs to run every round."""
        if self.retrain_steps is None:
            return self.end(self.iterations)
        return -(-self.end(self.iterations) // self.steps_per_epoch)

    @property
    def total_steps(self) -> int:
        """The `max_steps` a Trainer needs (-1: no limit but the epochs)."""
        return -1 if self.retrain_steps is None else self.end(self.iterations)

    @property
    def kept_round(self) -> int:
        """The round whose model is the result."""
        return self.stopped_at - 1 if self.stopped_at is not None else self.evaluated - 1

    def end(self, r: int) -> int:
        """Where round r is complete and round r + 1 is pruned: an epoch, or with retrain_steps a step."""
        if self.retrain_steps is None:
            return self.dense_epochs + r * self.retrain_epochs
        return self.dense_epochs * self.steps_per_epoch + r * self.retrain_steps

    def position(self, trainer: pl.Trainer) -> int:
        """How far training is, in the unit of `end`."""
        return trainer.current_epoch if self.retrain_steps is None else trainer.global_step

    # --- Lightning hooks: thin, everything else is in plain methods -------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Before any checkpoint is restored, so saved masks load into matching buffers.
        masks.attach(pl_module, prunable(pl_module, self.include_head, self.include_embedding))
        self.slots = unit_slots(pl_module) if self.group_lasso else []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.rewind is not None and trainer.current_epoch == self.rewind and self.rewind_state is None:
            self.rewind_state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        if self.retrain_steps is None:
            self.advance(trainer, pl_module, trainer.current_epoch, prune=True)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.retrain_steps is not None:
            self.advance(trainer, pl_module, trainer.global_step, prune=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.advance(trainer, pl_module, self.position(trainer), prune=False)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if self.l1 or self.group_lasso:
            with torch.enable_grad():
                penalty = self.l1 * penalties.l1(pl_module, list(masks.read(pl_module))) if self.l1 else 0.0
                if self.group_lasso:
                    penalty = penalty + self.group_lasso * penalties.group_lasso(pl_module, self.slots)
                penalty.backward()
        masks.mask_grads(pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        masks.apply(pl_module)

    def state_dict(self) -> dict[str, Any]:
        keys = ("pruned", "evaluated", "history", "stopped_at", "rewind_state", "_kept")
        return {key: getattr(self, key) for key in keys}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for key, value in state_dict.items():
            setattr(self, key, value)

    # --- the rounds -------------------------------------------------------------------------------

    def advance(self, trainer: pl.Trainer, pl_module: pl.LightningModule, at: int, prune: bool) -> None:
        """Evaluate every round finished by `at` (an epoch or a step), then prune if the next round starts."""
        while self.stopped_at is None and self.evaluated <= self.iterations and at >= self.end(self.evaluated):
            self.evaluate(trainer, pl_module, self.evaluated)
            self.evaluated += 1
            self.check_tolerance(trainer, pl_module)
        ready = self.pruned < self.iterations and at >= self.end(self.pruned)
        if prune and ready and self.stopped_at is None:
            self.pruned += 1
            self.prune(trainer, pl_module, self.pruned)

    def prune(self, trainer: pl.Trainer, pl_module: pl.LightningModule, r: int) -> None:
        """Score every prunable weight and shrink the masks to round r's target (or threshold)."""
        current = masks.read(pl_module)
        params = dict(pl_module.named_parameters())
        grads = dict.fromkeys(current)
        if self.criterion.needs_grad:
            batches = _take(trainer.datamodule.train_dataloader(), self.grad_batches, pl_module.device)
            grads = mean_abs_grads(pl_module, pl_module.loss, batches, list(current))
        generator = torch.Generator().manual_seed(self.seed * 1_000 + r)
        scores = {name: self.criterion.score(params[name], grads[name], generator) for name in current}
        keep = rule(self.scope, self.schedule(r, self.iterations, self.amount), self.threshold)
        masks.update(pl_module, self.granularity(pl_module, scores, current, keep, self.criterion.reduce))
        if self.rewind_state is not None:
            self.rewind_weights(trainer, pl_module)

    def rewind_weights(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Lottery-ticket rewinding: surviving weights go back to the rewind point, optimizer state is reset."""
        kept = {k: m.clone() for k, m in masks.read(pl_module).items()}
        pl_module.load_state_dict(self.rewind_state)
        masks.update(pl_module, kept)
        for optimizer in trainer.optimizers:
            optimizer.state.clear()

    def check_tolerance(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Stop when the last round fell more than the tolerance below dense; restore the round before."""
        if self.tolerance is None:
            return
        key = f"val_{pl_module.metric}"
        dense, last = self.history[0][key], self.history[-1][key]
        loss = (dense - last) if pl_module.direction == "max" else (last - dense)
        if loss <= self.tolerance:
            self._kept = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            return
        self.stopped_at = self.history[-1]["round"]
        pl_module.load_state_dict(self._kept)
        trainer.should_stop = True
        rank_zero_info(
            f"stopping: round {self.stopped_at} lost {loss:.4f} > tolerance; keeping round {self.kept_round}"
        )

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, r: int) -> None:
        """Measure round r on the validation and test splits and log it with step = r."""
        metric, data, current = pl_module.metric, trainer.datamodule, masks.read(pl_module)
        record = {"sparsity": masks.sparsity(current)}
        for split, loader in (("val", data.val_dataloader()), ("test", data.test_dataloader())):
            scores = pl_module.evaluate(loader)
            record.update({f"{split}_{name}": scores[name] for name in pl_module.scoring.metrics})
        record["nonzero_params"] = float(masks.nonzero_params(pl_module))
        record["model_bytes"] = float(masks.model_bytes(pl_module))
        if self.structured:
            record["hidden_units"] = float(hidden_units(pl_module, current))
        self.history.append({"round": r, "epoch": trainer.current_epoch, "step": trainer.global_step, **record})
        for logger in trainer.loggers:
            logger.log_metrics(record, step=r)
        rank_zero_info(
            f"round {r}/{self.iterations}: sparsity {record['sparsity']:.4f}  "
            f"val_{metric} {record[f'val_{metric}']:.4f}  test_{metric} {record[f'test_{metric}']:.4f}"
        )


def _take(loader: Any, n: int, device: torch.device) -> list[Any]:
    """The first n batches of a loader, moved to the device."""
    out = []
    for batch in loader:
        if len(out) == n:
            break
        out.append(tuple(t.to(device) for t in batch))
    return out
