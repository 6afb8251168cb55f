"""Discovery of what can be pruned: recurrent weight matrices, and hidden units across all their gates.

Lightning's `ModelPruning` looks only for parameters named `weight`, so it misses `weight_ih_l{k}` and
`weight_hh_l{k}[_reverse]` of `nn.RNN`/`nn.LSTM`/`nn.GRU`; torch's structured pruning zeroes gate rows,
not hidden units. Here a hidden unit j of one layer and direction is its whole group:

    rows g*H + j of W_ih and W_hh, for every gate g      (what flows into the unit)
    column j of W_hh                                     (its own recurrence)
    column d*H + j of the next layer's W_ih (both directions) or of the head   (what flows out)

Recurrent layers are the `nn.RNNBase` modules in definition order, each single-layer; the head is the
`nn.Linear` named `head`. Names are full parameter names of the model that is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pipeline.pruning.gates import GATES

RECURRENT_WEIGHT = re.compile(r"weight_(ih|hh)_l\d+(_reverse)?$")


def prunable(
    model: nn.Module, include_head: bool = True, include_embedding: bool = False, head: str = "head"
) -> list[str]:
    """Names of the prunable parameters: recurrent weight matrices, plus the head's Linear weight and an
    input embedding's weight if asked for."""
    names = []
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        if isinstance(module, nn.RNNBase):
            names += [prefix + p for p, _ in module.named_parameters(recurse=False) if RECURRENT_WEIGHT.match(p)]
        elif (include_head and isinstance(module, nn.Linear) and module_name.split(".")[-1] == head) or (
            include_embedding and isinstance(module, nn.Embedding)
        ):
            names.append(prefix + "weight")
    return names


@dataclass(frozen=True)
class Slot:
    """The hidden units of one layer and direction, and where each unit's weights sit."""

    layer: int
    direction: int
    size: int  # H
    gates: int  # G
    rows: tuple[str, ...]  # W_ih, W_hh of this direction: rows g*H + j belong to unit j
    cols: tuple[tuple[str, int], ...]  # (param, offset): column offset + j belongs to unit j

    @property
    def key(self) -> str:
        return f"l{self.layer}{'_reverse' if self.direction else ''}"


def unit_slots(model: nn.Module, head: str = "head") -> list[Slot]:
    """Every (layer, direction) of the model's recurrent stack, with its units' row and column owners."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.RNNBase)]
    head_name = next(n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] == head)
    slots = []
    for i, (name, rnn) in enumerate(layers):
        if rnn.num_layers != 1 or getattr(rnn, "proj_size", 0):
            raise ValueError(f"{name}: structured pruning needs single-layer recurrent modules without projections")
        directions = 2 if rnn.bidirectional else 1
        for d in range(directions):
            sfx = "_reverse" if d else ""
            own = (f"{name}.weight_ih_l0{sfx}", f"{name}.weight_hh_l0{sfx}")
            if i + 1 < len(layers):
                nxt, n_dirs = layers[i + 1][0], 2 if layers[i + 1][1].bidirectional else 1
                outgoing = tuple((f"{nxt}.weight_ih_l0{s}", d * rnn.hidden_size) for s in ("", "_reverse")[:n_dirs])
            else:
                outgoing = ((f"{head_name}.weight", d * rnn.hidden_size),)
            cols = ((own[1], 0), *outgoing)
            slots.append(Slot(i, d, rnn.hidden_size, len(GATES[type(rnn)]), own, cols))
    return slots


def unit_scores(slot: Slot, scores: dict[str, Tensor], reduce: str = "sum") -> Tensor:
    """(H,) importance of each unit: per-weight scores summed over its group ("l2": root of summed squares)."""
    power = 2 if reduce == "l2" else 1
    total = torch.zeros(slot.size, device=scores[slot.rows[0]].device)
    for name in slot.rows:
        total += scores[name].pow(power).view(slot.gates, slot.size, -1).sum(dim=(0, 2))  # (G, H, in) -> (H,)
    for name, offset in slot.cols:
        total += scores[name][:, offset : offset + slot.size].pow(power).sum(dim=0)  # (out, H) -> (H,)
    # W_hh[g*H + j, j] is both a row and the column of unit j: count it once
    own = scores[slot.rows[1]].pow(power).view(slot.gates, slot.size, slot.size)  # (G, H, H)
    total -= torch.diagonal(own, dim1=1, dim2=2).sum(dim=0)
    return total.sqrt() if reduce == "l2" else total


def alive(slot: Slot, masks: dict[str, Tensor]) -> Tensor:
    """(H,) bool: units that still have a kept incoming weight."""
    return masks[slot.rows[0]].view(slot.gates, slot.size, -1).any(dim=(0, 2))


def unit_masks(slots: list[Slot], keep: dict[str, Tensor], masks: dict[str, Tensor]) -> dict[str, Tensor]:
    """Weight masks with every removed unit's rows and columns cleared (keep: slot key -> (H,) bool)."""
    out = {name: m.clone() for name, m in masks.items()}
    for slot in slots:
        dead = ~keep[slot.key].to(next(iter(out.values())).device)
        for name in slot.rows:
            out[name].view(slot.gates, slot.size, -1)[:, dead] = False
        for name, offset in slot.cols:
            out[name][:, offset : offset + slot.size][:, dead] = False
    return out


def hidden_units(model: nn.Module, masks: dict[str, Tensor]) -> int:
    """Living hidden units over all layers and directions."""
    return sum(int(alive(slot, masks).sum()) for slot in unit_slots(model))
