"""Command line: `python -m pipeline {train|prune|search|compare|report} [key=value ...] [--config FILE]`."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import warnings
from collections.abc import Sequence

from pipeline import config
from pipeline.errors import PipelineError

COMMANDS = {
    "train": "train the dense model and log it as round 0",
    "prune": "train, then run the prune -> retrain rounds of the recipe",
    "search": "search pruning recipes with Optuna: the sparsity-vs-quality Pareto front",
    "compare": "compare Pareto fronts across searches (not available in this version)",
    "report": "write a report of a search (not available in this version)",
}
AVAILABLE = {"train", "prune", "search"}


def parser() -> argparse.ArgumentParser:
    """The argument parser; its epilog lists every config key with its default."""
    keys = "\n".join(f"  {key:<28} {default!r:<18} {help}" for key, default, help in config.options())
    p = argparse.ArgumentParser(
        prog="python -m pipeline",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Prune recurrent networks round by round; every round is logged to MLflow.",
        epilog=f"config keys (override with key=value; select a conf/ file with group=name):\n{keys}",
    )
    p.add_argument("command", choices=list(COMMANDS), help="; ".join(f"{k}: {v}" for k, v in COMMANDS.items()))
    p.add_argument("overrides", nargs="*", help="key=value, e.g. pruning.amount=0.95 model=gru")
    p.add_argument("--config", metavar="FILE", help="a YAML file of overrides (group: {key: value})")
    return p


def parse(argv: Sequence[str] | None = None) -> tuple[str, config.Config]:
    """The command and its validated Config."""
    args = parser().parse_args(argv)
    overrides = [item for arg in args.overrides for item in _split(arg)]
    cfg = config.load(overrides, args.config)
    if args.command not in AVAILABLE:
        raise PipelineError(f"{args.command}: not available in this version; use one of {sorted(AVAILABLE)}")
    return args.command, cfg


def quiet_dependencies() -> None:
    """Keep the terminal to progress that matters: no advertising tip, no deprecation noise of dependencies,
    no download bars, and Optuna's per-trial lines left to the search's own."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "Tip:" not in r.getMessage())
    logging.getLogger("optuna").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*(does not have many workers|LeafSpec).*")


def _split(arg: str) -> list[str]:
    """`mlflow run` passes all overrides as one parameter: split it like a shell would, unless it is one
    key=value whose value holds spaces (`search.space={a: {low: 1, high: 2}}`)."""
    items = shlex.split(arg) if arg.strip() else []
    return items if all("=" in item for item in items) else [arg]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and validate everything, then run; a usage problem is one line on stderr and exit code 2."""
    quiet_dependencies()
    try:
        command, cfg = parse(argv)
        from pipeline import runner, search  # heavy imports only once the input is known to be good

        search.run(cfg) if command == "search" else runner.run(cfg, command)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
