"""Sparsity per gate: how much of each gate's block of rows in every recurrent weight matrix is pruned.

PyTorch stacks the gates of a recurrent cell along the rows of `weight_ih_l{k}` and `weight_hh_l{k}`
(4 * H rows for an LSTM, 3 * H for a GRU, H for a plain RNN), so a gate is a contiguous chunk of rows.
Counts come from the mask buffers where a parameter has one, else from the exact zeros of the weight.
"""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.pruning.masks import SUFFIX

# Row blocks of weight_ih/weight_hh, in PyTorch's order.
GATES: dict[type[nn.RNNBase], tuple[str, ...]] = {
    nn.LSTM: ("i", "f", "g", "o"),
    nn.GRU: ("r", "z", "n"),
    nn.RNN: ("h",),
}


def gate_sparsity(model: nn.Module, head: str = "head") -> list[dict]:
    """One row per (layer, direction, matrix, gate) of every recurrent module, plus one for the head."""
    rows, layer = [], 0
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            # A multi-layer module counts as several layers, so the index stays global across modules.
            for k in range(module.num_layers):
                rows += _layer_rows(module, k, layer)
                layer += 1
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name.split(".")[-1] == head:
            rows.append(_row("head", "-", "-", "-", _pruned(module, "weight")))
    return rows


def _layer_rows(module: nn.RNNBase, k: int, layer: int) -> list[dict]:
    gates = next(g for cls, g in GATES.items() if isinstance(module, cls))
    rows = []
    for direction, suffix in [("forward", ""), ("reverse", "_reverse")][: 2 if module.bidirectional else 1]:
        for matrix in ("ih", "hh"):
            pruned = _pruned(module, f"weight_{matrix}_l{k}{suffix}")  # (G * H, in)
            for gate, chunk in zip(gates, pruned.chunk(len(gates), dim=0), strict=True):
                rows.append(_row(layer, direction, matrix, gate, chunk))
    return rows


def _pruned(module: nn.Module, attr: str) -> Tensor:
    """Bool tensor of the parameter's shape, True where the weight is pruned."""
    mask = getattr(module, attr + SUFFIX, None)
    return ~mask.bool() if mask is not None else getattr(module, attr).detach() == 0


def _row(layer: int | str, direction: str, matrix: str, gate: str, pruned: Tensor) -> dict:
    n, total = int(pruned.sum()), pruned.numel()
    return {
        "layer": layer,
        "direction": direction,
        "matrix": matrix,
        "gate": gate,
        "pruned": n,
        "total": total,
        "sparsity": n / total if total else 0.0,
    }
