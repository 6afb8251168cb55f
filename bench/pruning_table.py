"""The README's table: test accuracy lost per criterion at 98% and 99% unstructured sparsity and at 75%
of hidden units removed, median over seeds, against the same dense model (same seed, same dense epochs).

    python bench/pruning_table.py [--seeds 0,1,2] [--workers 2] [--criteria magnitude,taylor,...]

Runs every (setting, criterion, seed) in its own single-threaded process, `--workers` at a time, and
prints a markdown table plus one line per run. Nothing is written to MLflow.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import warnings
from concurrent.futures import ProcessPoolExecutor

import torch
from accuracy import measure

SETTINGS = {
    "unstructured 98%": ["pruning.amount=0.98", "pruning.iterations=8"],
    "unstructured 99%": ["pruning.amount=0.99", "pruning.iterations=8"],
    "structured 75% units": ["pruning.granularity=structured", "pruning.scope=local", "pruning.amount=0.75"],
}
CRITERIA = "magnitude,l2,taylor,gradient,random"


def job(setting: str, criterion: str, seed: int) -> tuple[str, str, int, dict[str, float]]:
    torch.set_num_threads(1)  # several small runs side by side beat one run on all cores
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    return setting, criterion, seed, measure([*SETTINGS[setting], f"pruning.method={criterion}"], seed, prune=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--criteria", default=CRITERIA)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names of SETTINGS")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [
        (s, c, seed)
        for s in args.settings.split(",")
        for c in args.criteria.split(",")
        if not (c == "l2" and s.startswith("unstructured"))  # l2 of a single weight is its magnitude
        for seed in seeds
    ]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for setting, criterion, seed, r in pool.map(job, *zip(*jobs, strict=True)):
            results.setdefault((setting, criterion), []).append(r)
            print(
                f"{setting:22} {criterion:10} seed {seed}: dense {r['dense']:.4f} final {r['final']:.4f} "
                f"sparsity {r['sparsity']:.4f} ({r['seconds']:.0f} s)",
                flush=True,
            )
    print("\n| setting | criterion | dense | pruned | change (points) | weight sparsity |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (setting, criterion), rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("dense", "final", "sparsity")}
        change = statistics.median(100 * (r["final"] - r["dense"]) for r in rows)
        print(
            f"| {setting} | {criterion} | {100 * med['dense']:.2f}% | {100 * med['final']:.2f}% | {change:+.2f} "
            f"| {med['sparsity']:.4f} |"
        )


if __name__ == "__main__":
    main()
