"""The README's task table: per task, the dense test figure and the figure at 80% unstructured sparsity
(the default config of each task, one seed), with the task's baselines where it has them.

    python bench/tasks_table.py [--tasks speech,mnist1d,forecast,language] [--seed 0] [--workers 2]

Each task runs `prune` with `pruning.amount=0.8` in its own single-threaded process, `--workers` at a
time. Nothing is written to MLflow; prints a markdown table.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import lightning.pytorch as pl
import torch

from pipeline import config, runner

TASKS = "speech,mnist1d,forecast,language"


def job(task: str, seed: int, extra: tuple[str, ...]) -> dict:
    """Train and prune one task; its dense and final rounds, and its baselines."""
    torch.set_num_threads(1)  # several single-threaded runs side by side beat one run on all cores
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    cfg = config.load([f"task={task}", "pruning.amount=0.8", f"train.seed={seed}", *extra])
    data, module, callback = runner.build(cfg, rounds=cfg.pruning.iterations)
    start = time.perf_counter()
    trainer = pl.Trainer(
        max_epochs=callback.total_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data)
    return {
        "task": task,
        "dataset": cfg.task.path or cfg.task.dataset if task != "mnist1d" else "MNIST-1D",
        "model": f"{cfg.model.cell} {cfg.model.hidden_size}{' bi' if cfg.model.bidirectional else ''}",
        "epochs": f"{cfg.train.epochs} + {cfg.pruning.iterations} x {cfg.pruning.retrain_epochs}",
        "metric": module.metric,
        "direction": module.direction,
        "dense": callback.history[0][f"test_{module.metric}"],
        "pruned": callback.history[-1][f"test_{module.metric}"],
        "sparsity": callback.history[-1]["sparsity"],
        "baseline": {k: v for k, v in data.spec.baseline.items() if k.endswith(f"test_{module.metric}")},
        "minutes": (time.perf_counter() - start) / 60,
    }


def figure(value: float, metric: str) -> str:
    return f"{100 * value:.2f}%" if metric == "accuracy" else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="key=value applied to every task")
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    with ProcessPoolExecutor(args.workers) as pool:
        n = len(tasks)
        rows = list(pool.map(job, tasks, [args.seed] * n, [tuple(args.overrides)] * n))
    columns = ["task", "data", "model", "epochs", "metric", "dense", "80% sparse", "change (+ is better)"]
    print("| " + " | ".join([*columns, "baselines (test)", "minutes"]) + " |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        metric, sign = r["metric"], 1 if r["direction"] == "max" else -1
        change = sign * (r["pruned"] - r["dense"])
        change_text = f"{100 * change:+.2f} points" if metric == "accuracy" else f"{change:+.4f}"
        baselines = ", ".join(f"{k.split('_test')[0]} {v:.4f}" for k, v in r["baseline"].items()) or "-"
        print(
            f"| {r['task']} | {r['dataset']} | {r['model']} | {r['epochs']} | {metric} ({r['direction']}) "
            f"| {figure(r['dense'], metric)} | {figure(r['pruned'], metric)} (sparsity {r['sparsity']:.4f}) "
            f"| {change_text} | {baselines} | {r['minutes']:.1f} |"
        )


if __name__ == "__main__":
    main()
