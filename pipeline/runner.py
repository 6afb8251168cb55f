"""One training job: build the task, the model and the pruning callback from a Config, fit, log.

`train` fits the dense model and logs it as round 0; `prune` goes on with the prune -> retrain rounds.
Everything lands in one MLflow run, whose id is returned.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from pipeline import tracking
from pipeline.config import Config
from pipeline.data import TASKS
from pipeline.models import RNNModule
from pipeline.pruning.callback import PruningCallback


def pruning_callback(cfg: Config, rounds: int) -> PruningCallback:
    """The callback of the config's recipe, with `rounds` rounds (0: evaluate the dense model only)."""
    p = cfg.pruning
    return PruningCallback(
        method=p.method,
        schedule=p.schedule,
        scope=p.scope,
        amount=p.amount,
        threshold=p.threshold,
        iterations=rounds,
        dense_epochs=cfg.train.epochs,
        retrain_epochs=p.retrain_epochs,
        include_head=p.include_head,
    )


def build(cfg: Config, rounds: int) -> tuple[pl.LightningDataModule, RNNModule, PruningCallback]:
    """The datamodule, and the module carrying its pruning callback."""
    data = TASKS[cfg.task.name](
        dataset=cfg.task.dataset,
        val_fraction=cfg.task.val_fraction,
        batch_size=cfg.task.batch_size,
        seed=cfg.train.seed,
    )
    spec = data.spec
    callback = pruning_callback(cfg, rounds)
    pl.seed_everything(cfg.train.seed, verbose=False)
    module = RNNModule(
        **dataclasses.asdict(cfg.model),
        input_size=spec.input_size,
        num_outputs=spec.num_outputs,
        metric=spec.metric,
        lr=cfg.train.lr,
        weight_decay=cfg.train.weight_decay,
        seed=cfg.train.seed,
        callbacks=[callback],
    )
    return data, module, callback


def run(cfg: Config, command: str) -> str:
    """Run `train` or `prune` as one MLflow run; return its id."""
    data, module, callback = build(cfg, rounds=cfg.pruning.iterations if command == "prune" else 0)
    uri = tracking.tracking_uri(cfg.tracking.uri)
    with tracking.open_run(
        uri, cfg.tracking.experiment, cfg.flat(), cfg.tracking.run_name, tags={"pipeline.command": command}
    ) as logger:
        trainer = pl.Trainer(
            max_epochs=callback.total_epochs,
            logger=logger,
            accelerator=cfg.train.accelerator,
            devices=1,
            callbacks=[ModelCheckpoint(dirpath=Path(cfg.train.checkpoint_dir) / logger.run_id, save_last=True)],
            enable_progress_bar=sys.stderr.isatty(),
            enable_model_summary=False,
            log_every_n_steps=1,
        )
        trainer.fit(module, datamodule=data, ckpt_path=cfg.train.resume)
        if cfg.tracking.log_model:
            tracking.log_model(logger.client, logger.run_id, module.net, module.net_config)
        print(f"run {logger.run_id} in {uri} (open it with: mlflow ui --backend-store-uri {uri})")
        return logger.run_id
