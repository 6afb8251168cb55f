"""The README's task table: per task, the dense test figure and the figure at 80% unstructured sparsity
(the default config of each task, one seed), with the task's baselines where it has them.

    python bench/tasks_table.py [--tasks speech,mnist1d,forecast,language] [--seed 0] [--workers 2]

Each task runs `prune` with `pruning.amount=0.8` in its own single-threaded process, `--workers` at a
time. Nothing is written to MLflow; prints a markdown table.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from concurrent.futures import ProcessPoolExecutor

import torch
from accuracy import measure

from pipeline import conf

TASKS = "speech,mnist1d,forecast,language"


def job(task: str, seed: int, extra: tuple[str, ...]) -> dict:
    """Train and prune one task with 80% as its target; what `measure` found, and what was run."""
    torch.set_num_threads(1)  # several single-threaded runs side by side beat one run on all cores
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    overrides = [f"task={task}", "pruning.amount=0.8", *extra]
    cfg = conf.load([*overrides, f"train.seed={seed}"])
    return {
        **measure(overrides, seed, prune=True),
        "task": task,
        "dataset": cfg.task.path or cfg.task.dataset if task != "mnist1d" else "MNIST-1D",
        "model": f"{cfg.model.cell} {cfg.model.hidden_size}{' bi' if cfg.model.bidirectional else ''}",
        "epochs": f"{cfg.train.epochs} + {cfg.pruning.iterations} x {cfg.pruning.retrain_epochs}",
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
        change = sign * (r["final"] - r["dense"])
        change_text = f"{100 * change:+.2f} points" if metric == "accuracy" else f"{change:+.4f}"
        baselines = ", ".join(f"{k.split('_test')[0]} {v:.4f}" for k, v in r["baseline"].items()) or "-"
        print(
            f"| {r['task']} | {r['dataset']} | {r['model']} | {r['epochs']} | {metric} ({r['direction']}) "
            f"| {figure(r['dense'], metric)} | {figure(r['final'], metric)} (sparsity {r['sparsity']:.4f}) "
            f"| {change_text} | {baselines} | {r['seconds'] / 60:.1f} |"
        )


if __name__ == "__main__":
    main()
