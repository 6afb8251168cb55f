"""A static HTML report of one source (a search or an experiment): its Pareto front, the table of its trials,
per-trial round curves, and the per-gate sparsity heatmaps of the front's models.

Images are matplotlib PNGs beside index.html, referenced by relative paths: the page opens offline, from a
file or an artifact store, with no script and no external URL.
"""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

import pandas as pd

from pipeline import compare, plots, tracking
from pipeline.errors import PipelineError

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.wide { overflow-x: auto; }
table.trials { border-collapse: collapse; font-size: 12px; }
table.trials td, table.trials th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }
figure { display: inline-block; margin: 0.4em; vertical-align: top; }
figcaption { font-size: 12px; color: #555; text-align: center; }
"""


def run(text: str, out: Path) -> Path:
    """Write `out`/index.html and its images for one source; returns the page's path."""
    source = compare.parse_source(text)
    try:
        trials, dense = compare.read(source)
    except PipelineError as err:  # the one source is unreadable: an error, not a warning
        raise PipelineError(f"{source}: {err}") from None
    print(f"read {len(trials)} trials from {source}", flush=True)
    table = compare.fronts(trials)
    summary = compare.hypervolumes(table, compare.references(table, dense))
    out.mkdir(parents=True, exist_ok=True)
    client = tracking.connect(source.uri)
    sections = [
        _fronts(table, dense, out),
        _tables(table, summary),
        _curves(client, table, out),
        _heatmaps(client, table, out),
    ]
    page = out / "index.html"
    page.write_text(_page(f"Pruning search report: {source}", sections), encoding="utf-8")
    print(f"report: {page.resolve()}")
    return page


def _fronts(table: pd.DataFrame, dense: pd.DataFrame, out: Path) -> str:
    """One front plot per quality metric: every trial, the front highlighted, the dense quality if unique."""
    figures = []
    for metric, rows in table.groupby("metric"):
        quality = f"val_{metric}"
        frame = rows.rename(columns={"val_quality": quality, "pareto_source": "pareto"})
        baseline = dense.loc[dense["metric"] == metric, "val_quality"]
        line = float(baseline.iloc[0]) if len(baseline) == 1 else None  # several dense models: no single line
        name = f"front_{metric}.png"
        plots.front_plot(frame, quality, out / name, line, f"Pareto front, {quality}")
        figures.append(_figure(name, f"{len(rows)} trials, {int(rows['pareto_source'].sum())} on the front"))
    return _section("Pareto front", "".join(figures))


def _tables(table: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The hypervolume with its reference point, then every trial (one source: one front)."""
    trials = table.drop(columns=["source", "pareto_combined"]).rename(columns={"pareto_source": "pareto"})
    trials = trials.sort_values(["metric", "trial"])
    # A recipe key every trial shares is said once, so the table shows what the search varied.
    same = [c for c in trials if c.startswith(("pruning.", "model.", "task.")) and trials[c].nunique(dropna=False) == 1]
    shared = ", ".join(f"{c}={'null' if pd.isna(trials[c].iloc[0]) else trials[c].iloc[0]}" for c in same)
    return _section(
        "Trials",
        "<p>Hypervolume of the front above the reference point (sparsity, validation quality):</p>"
        + _html_table(summary.drop(columns=["source", "on_combined_front"]))
        + f"<p>Every trial: {html.escape(shared)}</p>" * bool(same)
        + _html_table(trials.drop(columns=same)),
    )


def _curves(client: tracking.Client, table: pd.DataFrame, out: Path) -> str:
    """One figure per trial: validation quality and sparsity against the round, from the metric histories."""
    figures = []
    for row in table.sort_values(["metric", "trial"]).itertuples():
        quality = f"val_{row.metric}"
        history = pd.DataFrame(
            {key: tracking.metric_history(client, row.run_id, key) for key in (quality, "sparsity")}
        )  # index: the step, which is the round
        history = history.rename_axis("round").reset_index().sort_values("round")
        name = f"curves_{row.run_id[:12]}.png"
        plots.round_curves(history, quality, out / name, f"trial {row.trial} (run {row.run_id[:8]})")
        figures.append(_figure(name, f"trial {row.trial}"))
    return _section("Rounds of each trial", "".join(figures))


def _heatmaps(client: tracking.Client, table: pd.DataFrame, out: Path) -> str:
    """Per-layer, per-gate sparsity of each front model, redrawn from its `sparsity/gates.csv` artifact."""
    figures = []
    for row in table[table["pareto_source"]].sort_values(["metric", "sparsity"]).itertuples():
        with tempfile.TemporaryDirectory() as tmp:
            found = tracking.download(client, row.run_id, "sparsity/gates.csv", tmp)
            rows = pd.read_csv(found, dtype={"layer": str}).to_dict("records") if found else None
        if rows is None:
            figures.append(f"<p>trial {row.trial}: the run has no sparsity/gates.csv</p>")
            continue
        name = f"gates_{row.run_id[:12]}.png"
        plots.gate_heatmap(rows, out / name, f"trial {row.trial}, sparsity {row.sparsity:.3f}")
        figures.append(_figure(name, f"trial {row.trial} (run {row.run_id[:8]})"))
    return _section("Sparsity per gate of the front's models", "".join(figures))


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.4g}"  # byte and parameter counts in full


def _html_table(frame: pd.DataFrame) -> str:
    text = frame.select_dtypes(exclude="number").columns  # unset params are None: shown empty, like NaN
    frame = frame.assign(**{c: frame[c].fillna("") for c in text})
    body = frame.to_html(index=False, escape=True, na_rep="", float_format=_number, classes="trials", border=0)
    return f'<div class="wide">{body}</div>'


def _figure(name: str, caption: str) -> str:
    src, text = html.escape(name), html.escape(caption)
    return f'<figure><img src="{src}" alt="{text}"><figcaption>{text}</figcaption></figure>'


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _page(title: str, sections: list[str]) -> str:
    title = html.escape(title)
    head = f'<meta charset="utf-8"><title>{title}</title><style>{STYLE}</style>'
    return f"<!DOCTYPE html>\n<html><head>{head}</head><body><h1>{title}</h1>{''.join(sections)}</body></html>\n"
