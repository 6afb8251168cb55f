"""Quality of a recipe over several seeds: dense vs pruned test metric, median, and wall time.

    python bench/accuracy.py                                  # dense default model, seeds 0 1 2
    python bench/accuracy.py --prune pruning.amount=0.98      # dense, then the pruning rounds

Runs in-process without MLflow (nothing is written); prints one line per seed and the medians.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from typing import Any

import lightning.pytorch as pl

from pipeline import conf, runner


def measure(overrides: list[str], seed: int, prune: bool) -> dict[str, Any]:
    """Train (and prune) one seed; the test metric of the dense and final rounds, the final sparsity, the
    metric's name and direction, the task's test baselines in that metric, and the seconds it took."""
    cfg = conf.load([*overrides, f"train.seed={seed}"])
    data, module, callback = runner.build(cfg, rounds=cfg.pruning.iterations if prune else 0)
    start = time.perf_counter()
    trainer = pl.Trainer(
        max_epochs=callback.total_epochs,
        max_steps=callback.total_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator=cfg.train.accelerator,
    )
    trainer.fit(module, datamodule=data)
    metric = f"test_{module.metric}"
    dense, final = callback.history[0], callback.history[-1]
    return {
        "dense": dense[metric],
        "final": final[metric],
        "sparsity": final["sparsity"],
        "seconds": time.perf_counter() - start,
        "metric": module.metric,
        "direction": module.direction,
        "baseline": {k: v for k, v in data.spec.baseline.items() if k.endswith(metric)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--prune", action="store_true", help="run the pruning rounds after dense training")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rows.append(measure(args.overrides, seed, args.prune))
        r = rows[-1]
        print(
            f"seed {seed}: dense {r['dense']:.4f}  final {r['final']:.4f} at sparsity {r['sparsity']:.4f}  "
            f"({r['seconds']:.1f} s)",
            flush=True,
        )
    med = {k: statistics.median(r[k] for r in rows) for k in ("dense", "final", "sparsity", "seconds")}
    print(
        f"median: dense {med['dense']:.4f}  final {med['final']:.4f}  change {100 * (med['final'] - med['dense']):+.2f}"
        f" points  sparsity {med['sparsity']:.4f}  {med['seconds']:.1f} s per seed  ({' '.join(args.overrides)})"
    )


if __name__ == "__main__":
    main()
