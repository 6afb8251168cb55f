"""Finished trials per minute with 1 and with 2 workers on the same kind of study, side by side.

    python bench/search_scaling.py [--trials 24] [key=value ...]

Each measurement runs `python -m pipeline search` in a fresh folder (sqlite MLflow store, journal study)
with a fixed recipe, so every trial costs the same; the rate counts from the first trial's start to the
last trial's end (the dense training before the trials is left out). Prints both rates and their ratio
(the goal is at least 1.7 on two cores).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

RECIPE = (
    "search.space={pruning.method: {choices: [magnitude]}, pruning.iterations: {choices: [2]}, "
    "pruning.retrain_epochs: {choices: [4]}}"
)


def trials_per_minute(workers: int, trials: int, overrides: list[str]) -> float:
    """Run one search in a fresh folder; finished trials per minute of trial time."""
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable,
            "-m",
            "pipeline",
            "search",
            RECIPE,
            f"search.n_trials={trials}",
            f"search.workers={workers}",
            "search.study=bench",
            f"tracking.uri=sqlite:///{folder}/mlflow.db",
            f"train.checkpoint_dir={folder}/ck",
            *overrides,
        ]
        subprocess.run(command, cwd=folder, check=True, capture_output=True)
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(f"{folder}/optuna.journal"))
        done = optuna.load_study(study_name="bench", storage=storage).get_trials(
            states=(optuna.trial.TrialState.COMPLETE,)
        )
    span = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    return len(done) / (span.total_seconds() / 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--trials", type=int, default=24)
    args = parser.parse_args()
    one = trials_per_minute(1, args.trials, args.overrides)
    two = trials_per_minute(2, args.trials, args.overrides)
    print(f"{args.trials} trials: 1 worker {one:.1f} trials/min, 2 workers {two:.1f} trials/min, ratio {two / one:.2f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
