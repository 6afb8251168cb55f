"""Static PNG figures for run artifacts (rendered with Agg, so they need no display and no CDN)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def gate_heatmap(rows: list[dict], path: Path, title: str = "") -> Path:
    """Heatmap of sparsity per gate (columns) for each layer, direction and matrix (rows); returns `path`."""
    df = pd.DataFrame(rows)
    df["row"] = [_label(r) for r in rows]
    # pivot sorts its labels; reindex restores the model's order (layers, then the head last).
    table = df.pivot(index="row", columns="gate", values="sparsity").reindex(
        index=list(dict.fromkeys(df["row"])), columns=list(dict.fromkeys(df["gate"]))
    )
    values = table.to_numpy(dtype=float)  # (rows, gates); NaN where a row has no such gate (the head)

    n_rows, n_cols = values.shape
    fig = Figure(figsize=(1.6 + 0.9 * n_cols, 1.0 + 0.35 * n_rows), layout="constrained")
    FigureCanvasAgg(fig)  # Agg explicitly, without touching pyplot's global backend
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    fig.colorbar(image, ax=ax, label="sparsity")
    for (i, j), v in np.ndenumerate(values):
        if not np.isnan(v):  # dark text on the bright end of viridis, light text on the dark end
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="black" if v > 0.6 else "white")
    ax.set_xticks(range(n_cols), ["(all)" if g == "-" else g for g in table.columns])
    ax.set_yticks(range(n_rows), list(table.index), fontsize=8)
    ax.set_xlabel("gate")
    ax.set_title(title or "sparsity per gate")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _label(row: dict) -> str:
    """'L0 forward hh' for a recurrent block, 'head' for the head."""
    if row["layer"] == "head":
        return "head"
    return f"L{row['layer']} {row['direction']} {row['matrix']}"


def front_plot(table: pd.DataFrame, quality: str, path: Path, dense: float | None = None, title: str = "") -> Path:
    """Every trial as a point (sparsity vs quality), the Pareto front highlighted, dense quality marked."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(table["sparsity"], table[quality], color="0.6", s=22, label="trials")
    front = table[table["pareto"]].sort_values("sparsity")
    ax.plot(front["sparsity"], front[quality], "o-", color="tab:red", label="Pareto front")
    if dense is not None:
        ax.axhline(dense, color="tab:blue", linestyle="--", linewidth=1, label="dense")
    ax.set_xlabel("sparsity")
    ax.set_ylabel(quality)
    ax.set_title(title or "sparsity vs quality")
    ax.legend(loc="best", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def overlay_plot(table: pd.DataFrame, path: Path, references: dict[str, tuple[float, float]], title: str = "") -> Path:
    """One panel per quality metric: each source's trials and front in its colour, the combined front dashed
    in black, the common reference point as a cross."""
    metrics = sorted(table["metric"].unique())
    fig = Figure(figsize=(7.5, 4.8 * len(metrics)), layout="constrained")
    FigureCanvasAgg(fig)
    colours = {s: f"C{k % 10}" for k, s in enumerate(dict.fromkeys(table["source"]))}
    for ax, metric in zip(fig.subplots(len(metrics), 1, squeeze=False)[:, 0], metrics, strict=True):
        rows = table[table["metric"] == metric]
        for source, part in rows.groupby("source", sort=False):
            front = part[part["pareto_source"]].sort_values("sparsity")
            ax.scatter(part["sparsity"], part["val_quality"], color=colours[source], s=18, alpha=0.45)
            ax.plot(front["sparsity"], front["val_quality"], "o-", color=colours[source], label=source)
        combined = rows[rows["pareto_combined"]].sort_values("sparsity")
        ax.plot(combined["sparsity"], combined["val_quality"], "--", color="black", lw=1, label="combined front")
        ax.plot(*references[metric], "x", color="black", ms=8, label="reference point")
        ax.set_xlabel("sparsity")
        ax.set_ylabel(f"val_{metric}")
        ax.set_title(title or f"Pareto fronts, val_{metric}")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=7)  # long source names: below
    return _save(fig, path)


def round_curves(history: pd.DataFrame, quality: str, path: Path, title: str = "") -> Path:
    """Validation quality (left axis) and sparsity (right axis) of one run against the round (0 = dense)."""
    fig = Figure(figsize=(4.8, 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(history["round"], history[quality], "o-", color="tab:red")
    ax.set_xlabel("round")
    ax.set_ylabel(quality, color="tab:red")
    twin = ax.twinx()
    twin.plot(history["round"], history["sparsity"], "s--", color="tab:blue")
    twin.set_ylabel("sparsity", color="tab:blue")
    twin.set_ylim(-0.02, 1.02)
    ax.set_xticks(list(history["round"]))
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
