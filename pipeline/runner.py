"""One training job: build the task, the model and the pruning callback from a Config, fit, log.

`train` fits the dense model and logs it as round 0; `prune` goes on with the prune -> retrain rounds,
then logs the result: the pruned model, its per-gate sparsity (table and heatmap), for structured
pruning the compacted model, and optionally its int8 quantization. Everything lands in one MLflow run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from pipeline import plots, tracking
from pipeline.config import Config
from pipeline.data import TASKS, TaskSpec
from pipeline.errors import ConfigError
from pipeline.models import RNNModule, RNNNet
from pipeline.pruning import masks
from pipeline.pruning.callback import PruningCallback
from pipeline.pruning.compact import compact
from pipeline.pruning.gates import gate_sparsity
from pipeline.quantize import quantize, state_bytes


def pruning_callback(cfg: Config, rounds: int, steps_per_epoch: int) -> PruningCallback:
    """The callback of the config's recipe, with `rounds` rounds (0: evaluate the dense model only)."""
    recipe = {k: v for k, v in dataclasses.asdict(cfg.pruning).items() if k != "quantize"}
    return PruningCallback(
        **{**recipe, "iterations": rounds},
        dense_epochs=cfg.train.epochs,
        seed=cfg.train.seed,
        steps_per_epoch=steps_per_epoch,
    )


def check_data(cfg: Config) -> TaskSpec:
    """Read the task's data once, so that data which cannot be used fails before any run is opened."""
    return TASKS[cfg.task.name].build(cfg.task, cfg.train.seed).spec


def build(cfg: Config, rounds: int) -> tuple[pl.LightningDataModule, RNNModule, PruningCallback]:
    """The datamodule, and the module carrying its pruning callback."""
    data = TASKS[cfg.task.name].build(cfg.task, cfg.train.seed)
    spec = data.spec
    callback = pruning_callback(cfg, rounds, steps_per_epoch=len(data.train_dataloader()))
    pl.seed_everything(cfg.train.seed, verbose=False)
    model = {k: v for k, v in dataclasses.asdict(cfg.model).items() if k != "embedding_dim"}
    module = RNNModule(
        **model,
        input_size=cfg.model.embedding_dim if spec.tokens else spec.input_size,
        num_outputs=spec.num_outputs,
        vocab_size=spec.input_size if spec.tokens else 0,
        per_step=spec.per_step,
        loss=spec.loss,
        metrics=list(spec.metrics),
        scale=None if spec.scale is None else list(spec.scale),
        lr=cfg.train.lr,
        weight_decay=cfg.train.weight_decay,
        seed=cfg.train.seed,
        callbacks=[callback],
    )
    if cfg.train.init_from:
        initialise(module.net, cfg.train.init_from, tracking.tracking_uri(cfg.tracking.uri))
    return data, module, callback


def initialise(net: RNNNet, source: str, uri: str) -> None:
    """Load a trained model's weights (masks folded in) from a state_dict file or an MLflow run's model."""
    try:
        if Path(source).is_file():
            state = torch.load(source, weights_only=True)
        else:
            state = masks.fold(tracking.load_model(source, uri))
        net.load_state_dict(state)
    except Exception as err:  # a missing run, an unreadable file or another architecture: one line each
        cause = " ".join(str(err).split())[:300]
        raise ConfigError(f"train.init_from={source}: cannot be loaded into this model ({cause})") from None


@dataclass(frozen=True)
class RunResult:
    """Where a job landed and the metrics of the round it kept."""

    run_id: str
    metrics: dict[str, float]  # sparsity, val_<metric>, test_<metric>, ... of the kept round
    metric: str  # the task's quality metric
    direction: str  # "max" or "min"


def run(
    cfg: Config,
    command: str,
    parent: str | None = None,
    tags: dict[str, str] | None = None,
    started: Callable[[str], None] | None = None,
    callbacks: Sequence[pl.Callback] = (),
) -> RunResult:
    """Run `train` or `prune` as one MLflow run (a child of `parent` if given); `started` gets its id first."""
    data, module, callback = build(cfg, rounds=cfg.pruning.iterations if command == "prune" else 0)
    uri = tracking.tracking_uri(cfg.tracking.uri)
    tags = {"pipeline.command": command, "pipeline.metric": module.metric, **(tags or {})}
    with tracking.open_run(uri, cfg.tracking.experiment, cfg.flat(), cfg.tracking.run_name, tags, parent) as logger:
        if started:
            started(logger.run_id)
        if data.spec.baseline:  # a reference method's figures on the same splits, e.g. seasonal naive
            tracking.log_metrics(logger.client, logger.run_id, data.spec.baseline)
            print("baselines: " + "  ".join(f"{k} {v:.4f}" for k, v in data.spec.baseline.items()), flush=True)
        trainer = pl.Trainer(
            max_epochs=callback.total_epochs,
            max_steps=callback.total_steps,
            logger=logger,
            accelerator=cfg.train.accelerator,
            devices=1,
            callbacks=[
                *callbacks,
                ModelCheckpoint(dirpath=Path(cfg.train.checkpoint_dir) / logger.run_id, save_last=True),
            ],
            enable_progress_bar=sys.stderr.isatty(),
            enable_model_summary=False,
            log_every_n_steps=1,
        )
        trainer.fit(module, datamodule=data, ckpt_path=cfg.train.resume)
        log_result(cfg, logger.client, logger.run_id, module, callback, data)
        if parent is None:
            shown = tracking.redact(uri)
            print(f"run {logger.run_id} in {shown} (open it with: mlflow ui --backend-store-uri {shown})")
        kept = next(h for h in callback.history if h["round"] == callback.kept_round)
        metrics = {k: v for k, v in kept.items() if k not in ("round", "epoch", "step")}
        return RunResult(logger.run_id, metrics, module.metric, module.direction)


def log_result(
    cfg: Config,
    client: tracking.Client,
    run_id: str,
    module: RNNModule,
    callback: PruningCallback,
    data: pl.LightningDataModule,
) -> None:
    """Log what the rounds produced: which round was kept, the model(s), per-gate sparsity, quantization."""
    tags = {"pruning.kept_round": str(callback.kept_round)}
    if callback.stopped_at is not None:
        tags["pruning.stopped_at"] = str(callback.stopped_at)
    tracking.set_tags(client, run_id, tags)
    rows = gate_sparsity(module.net)
    tracking.log_table(client, run_id, rows, "sparsity/gates")
    with tempfile.TemporaryDirectory() as tmp:
        plots.gate_heatmap(rows, Path(tmp) / "gates.png")
        tracking.log_folder(client, run_id, tmp, "sparsity")
    with tempfile.TemporaryDirectory() as tmp:  # what it takes to feed the model new data
        task = {"name": cfg.task.name, **dataclasses.asdict(data.spec)}
        (Path(tmp) / "task.json").write_text(json.dumps(task, indent=2, ensure_ascii=False))
        tracking.log_folder(client, run_id, tmp)
    structured = cfg.pruning.granularity == "structured"
    final = compact(module.net) if structured else plain(module.net)
    if cfg.tracking.log_model:
        tracking.log_model(client, run_id, module.net)
        if structured:
            tracking.log_model(client, run_id, final, "compacted_model")
    if structured:
        size = {"compacted_params": sum(p.numel() for p in final.parameters()), "compacted_bytes": state_bytes(final)}
        tracking.log_metrics(client, run_id, size)
    if cfg.pruning.quantize:
        small, metric = quantize(final), module.metric
        tracking.log_metrics(
            client,
            run_id,
            {
                "float_bytes": state_bytes(final),
                "quantized_bytes": state_bytes(small),
                f"quantized_val_{metric}": module.scoring.evaluate(small, data.val_dataloader())[metric],
                f"quantized_test_{metric}": module.scoring.evaluate(small, data.test_dataloader())[metric],
            },
        )


def plain(net: RNNNet) -> nn.Module:
    """A copy of the network without mask buffers, masks folded into the weights."""
    copy = RNNNet(**net.config)
    copy.load_state_dict(masks.fold(net))
    return copy
