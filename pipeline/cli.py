"""Command line: `python -m pipeline {train|prune|search} [key=value ...] [--config FILE]`, and
`python -m pipeline compare SOURCE [SOURCE ...] [--out DIR] [--log-to URI] [--reference S,Q]`,
`python -m pipeline report SOURCE [--out DIR]`, where a SOURCE is `URI#NAME`."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from pipeline import conf, config
from pipeline.errors import PipelineError

COMMANDS = {
    "train": "train the dense model and log it as round 0",
    "prune": "train, then run the prune -> retrain rounds of the recipe",
    "search": "search pruning recipes with Optuna: the sparsity-vs-quality Pareto front",
    "compare": "compare the Pareto fronts of searches across tracking stores: compare SOURCE [SOURCE ...]",
    "report": "write a static HTML report of a search: report SOURCE",
}
AVAILABLE = {"train", "prune", "search"}  # the commands configured by key=value
SOURCE_HELP = "URI#NAME: a tracking URI and an experiment name or a search's parent run id"
FLAGS = {"--out", "--log-to", "--reference"}  # flags of compare/report that take a value


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
    cfg = conf.load(overrides, args.config)
    if args.command not in AVAILABLE:
        raise PipelineError(f"{args.command} takes sources, not config keys: python -m pipeline {args.command} --help")
    return args.command, cfg


def quiet_dependencies() -> None:
    """Keep the terminal to progress that matters: no advertising tip, no deprecation noise of dependencies,
    no download bars (Optuna's per-trial lines are silenced by the search itself)."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "Tip:" not in r.getMessage())
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*(does not have many workers|LeafSpec).*")


def _split(arg: str) -> list[str]:
    """`mlflow run` passes all overrides as one parameter: split it like a shell would, unless it is one
    key=value whose value holds spaces (`search.space={a: {low: 1, high: 2}}`)."""
    items = shlex.split(arg) if arg.strip() else []
    return items if all("=" in item for item in items) else [arg]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit code 2, like every other usage problem
        raise PipelineError(f"{self.prog}: {message}")


def source_parser(command: str) -> argparse.ArgumentParser:
    """The parser of `compare` and `report`: sources, not config keys."""
    p = _Parser(prog=f"python -m pipeline {command}", description=COMMANDS[command])
    p.add_argument("sources", nargs="*", metavar="SOURCE", help=SOURCE_HELP)
    p.add_argument("--out", metavar="DIR", default=f"./{command}", help=f"output folder (default: ./{command})")
    if command == "compare":
        p.add_argument("--log-to", metavar="URI", help="also log the comparison as a run (experiment `compare`)")
        p.add_argument("--reference", metavar="S,Q", type=point, help="fixed reference point of the hypervolumes")
    return p


def point(text: str) -> tuple[float, float]:
    """`S,Q` -> (sparsity, quality) of a reference point."""
    sparsity, quality = (float(v) for v in text.split(","))  # a ValueError becomes argparse's usage error
    return sparsity, quality


def _words(arg: str) -> list[str]:
    """`mlflow run` passes sources and flags as one string: split it like a shell would when every word is a
    source, a flag or a flag's value; otherwise it is one argument (a path with a space, say)."""
    try:
        words = shlex.split(arg)
    except ValueError:
        return [arg]
    values = {i + 1 for i, word in enumerate(words) if word in FLAGS}
    return words if all("#" in w or w.startswith("--") or i in values for i, w in enumerate(words)) else [arg]


def run_sources(command: str, argv: Sequence[str]) -> None:
    """Run `compare` or `report` on the sources in argv."""
    args = source_parser(command).parse_args([word for arg in argv for word in _words(arg)])
    if not args.sources or (command == "report" and len(args.sources) > 1):
        raise PipelineError(f"{command} needs {'one SOURCE' if command == 'report' else 'SOURCEs'} ({SOURCE_HELP})")
    from pipeline import compare, report  # heavy imports only once the input is known to be good

    if command == "compare":
        compare.run(args.sources, Path(args.out), args.log_to, args.reference)
    else:
        report.run(args.sources[0], Path(args.out))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and validate everything, then run; a usage problem is one line on stderr and exit code 2."""
    quiet_dependencies()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS.keys() - AVAILABLE:
            run_sources(argv[0], argv[1:])
            return 0
        command, cfg = parse(argv)
        from pipeline import runner, search  # heavy imports only once the input is known to be good

        search.run(cfg) if command == "search" else runner.run(cfg, command)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
