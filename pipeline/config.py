"""Typed configuration: the single source of truth for every option, its default, help and check.

`pipeline/conf.py` builds a validated Config from the conf/ files, a YAML file and `key=value` overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.checks import (
    at_least,
    in_open_unit,
    in_unit_interval,
    one_of,
    opt,
    positive,
)
from pipeline.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
GROUPS = ("task", "model", "train", "pruning", "tracking", "search")


# --- the options -------------------------------------------------------------------------------------


@dataclass
class TaskConfig:
    name: str = opt("speech", "task family", one_of("pipeline.data:TASKS"))
    dataset: str = opt(
        "JapaneseVowels", "built-in data: a UEA/UCR set aeon ships (speech), co2|sunspots (forecast), pydoc (language)"
    )
    path: str | None = opt(None, "your own data: a CSV (forecast), a UTF-8 text (language), a .ts folder (speech)")
    time_column: str | None = opt(None, "forecast: the CSV column that orders the rows (default: file order)")
    target: str | None = opt(None, "forecast: target column(s), comma-separated (default: every numeric column)")
    features: str | None = opt(None, "forecast: extra input column(s), comma-separated")
    window: int = opt(52, "forecast: past steps per input; language: characters per sequence", at_least(1))
    horizon: int = opt(4, "forecast: steps ahead to predict", at_least(1))
    season: int = opt(52, "forecast: period of the seasonal-naive baseline, in steps", at_least(1))
    val_fraction: float = opt(
        0.2, "share held out for validation (of train; forecast, language: of the data)", in_open_unit
    )
    test_fraction: float = opt(0.15, "forecast, language: the last share of the data, for testing", in_open_unit)
    batch_size: int = opt(32, "examples per batch", at_least(1))
    cache_dir: str | None = opt(None, "mnist1d: where generated data is kept (default: ~/.cache/rnn-pruning)")


@dataclass
class ModelConfig:
    cell: str = opt("lstm", "recurrent cell", one_of("pipeline.models:CELLS"))
    hidden_size: int = opt(128, "hidden units per layer and direction", at_least(1))
    num_layers: int = opt(1, "stacked recurrent layers", at_least(1))
    bidirectional: bool = opt(True, "read the sequence in both directions")
    dropout: float = opt(0.0, "dropout between recurrent layers and before the head", in_unit_interval)
    embedding_dim: int = opt(32, "language: width of the character embedding", at_least(1))


@dataclass
class TrainConfig:
    epochs: int = opt(60, "dense training epochs before the first pruning round", at_least(0))
    lr: float = opt(3e-3, "AdamW learning rate", positive)
    weight_decay: float = opt(0.0, "AdamW weight decay", at_least(0.0))
    seed: int = opt(0, "seed of the data split, the initialisation and every epoch's shuffle")
    accelerator: str = opt("cpu", "Lightning accelerator (cpu, gpu, auto)")
    checkpoint_dir: str = opt("checkpoints", "where Lightning checkpoints go (one folder per run)")
    resume: str | None = opt(None, "a checkpoint file to resume from")
    init_from: str | None = opt(None, "start from a trained model: an MLflow run id, or a state_dict.pt file")


@dataclass
class PruningConfig:
    method: str = opt("magnitude", "importance criterion", one_of("pipeline.pruning.criteria:CRITERIA"))
    granularity: str = opt(
        "unstructured", "what one pruning decision removes", one_of("pipeline.pruning.select:GRANULARITIES")
    )
    scope: str = opt(
        "global", "rank weights per tensor (local) or all together (global)", one_of("pipeline.pruning.select:SCOPES")
    )
    schedule: str = opt(
        "iterative", "how the target sparsity grows over rounds", one_of("pipeline.pruning.schedules:SCHEDULES")
    )
    amount: float = opt(0.9, "target share of weights (structured: of hidden units) pruned at the end", in_open_unit)
    threshold: float | None = opt(None, "if set, prune every weight (unit) scoring below it instead", positive)
    iterations: int = opt(4, "number of prune -> retrain rounds", at_least(1))
    retrain_epochs: int = opt(10, "training epochs after each pruning step", at_least(1))
    retrain_steps: int | None = opt(None, "if set, rounds last this many optimizer steps instead", at_least(1))
    include_head: bool = opt(True, "prune the head's weight too (structured pruning always cuts its columns)")
    include_embedding: bool = opt(False, "language: prune the character embedding's weight too")
    grad_batches: int = opt(8, "training batches whose gradients score weights (taylor, gradient)", at_least(1))
    tolerance: float | None = opt(None, "stop once val quality falls more than this below dense", at_least(0.0))
    rewind: int | None = opt(None, "lottery ticket: reset survivors to their weights at this epoch", at_least(0))
    l1: float = opt(0.0, "L1 penalty on prunable weights, added to the loss", at_least(0.0))
    group_lasso: float = opt(0.0, "group lasso penalty on hidden units, added to the loss", at_least(0.0))
    quantize: bool = opt(False, "int8 dynamic quantization of the final (compacted) model, logged beside it")


@dataclass
class TrackingConfig:
    uri: str | None = opt(None, "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    experiment: str = opt("rnn-pruning", "MLflow experiment name")
    run_name: str | None = opt(None, "MLflow run name")
    log_model: bool = opt(True, "log the final pruned model as an artifact")


def search_space(space: dict) -> str | None:
    """Each entry: a config key outside `search` -> {choices: [...]} or {low: a, high: b[, log: true]}."""
    defaults = Config()
    for key, spec in space.items():
        group, _, name = str(key).partition(".")
        if group not in GROUPS[:-1] or not hasattr(getattr(defaults, group), name):
            return f"entry {key!r} is not a config key outside search"
        ok_choices = isinstance(spec, dict) and isinstance(spec.get("choices"), list) and spec["choices"]
        ok_range = isinstance(spec, dict) and {"low", "high"} <= set(spec) and spec["low"] < spec["high"]
        if not (ok_choices or ok_range):
            return f"entry {key!r} needs {{choices: [...]}} or {{low: a, high: b}} with a < b"
    return None


@dataclass
class SearchConfig:
    study: str | None = opt(None, "Optuna study name (default: tracking.experiment)")
    storage: str | None = opt(None, "Optuna storage URL (default: optuna.journal next to ./mlflow.db)")
    n_trials: int = opt(12, "finished trials the study should reach", at_least(1))
    seed: int = opt(0, "seed of the sampler")
    mode: str = opt(
        "pareto",
        "pareto: quality and sparsity; constrained: quality at search.min_sparsity",
        one_of("pipeline.search:MODES"),
    )
    min_sparsity: float = opt(0.9, "constrained mode: the sparsity a trial must reach to count", in_open_unit)
    quality_floor: float | None = opt(None, "pareto mode: stop a trial whose val quality falls below this")
    workers: int = opt(1, "worker processes on this machine, all taking trials from the study", at_least(1))
    heartbeat: int = opt(10, "seconds between RDB heartbeats; a trial silent for 3 of them is retried", at_least(1))
    space: dict = opt({}, "search space: key -> {choices: [...]} or {low, high, log}", search_space)  # noqa: RUF009


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    def check(self) -> Config:
        """Rules between keys of different groups."""
        from pipeline.data import TASKS  # the registry is light; its families' data is imported when used

        if TASKS[self.task.name].causal and self.model.bidirectional:
            raise ConfigError(
                f"model.bidirectional=true: task {self.task.name} predicts the next step, which a backward "
                "direction would read; set model.bidirectional=false"
            )
        if TASKS[self.task.name].ordered and self.task.val_fraction + self.task.test_fraction >= 1:
            raise ConfigError(
                f"task.val_fraction={self.task.val_fraction}, task.test_fraction={self.task.test_fraction}: "
                "together they must leave a share of the data for training"
            )
        if self.train.epochs == 0 and not self.train.init_from:
            raise ConfigError("train.epochs=0: needs train.init_from, a trained model to start from")
        if self.pruning.rewind is not None and self.pruning.rewind > self.train.epochs:
            raise ConfigError(
                f"pruning.rewind={self.pruning.rewind}: must be <= train.epochs ({self.train.epochs}), "
                "the epoch pruning starts"
            )
        return self

    def flat(self) -> dict[str, Any]:
        """Every option as `group.key -> value`, e.g. for MLflow params."""
        return {f"{g}.{k}": v for g in GROUPS for k, v in dataclasses.asdict(getattr(self, g)).items()}


def options() -> list[tuple[str, Any, str]]:
    """Every option as (key, default, help), for --help."""
    cfg = Config()
    out = []
    for g in GROUPS:
        for f in dataclasses.fields(getattr(cfg, g)):
            out.append((f"{g}.{f.name}", getattr(getattr(cfg, g), f.name), f.metadata.get("help", "")))
    return out
