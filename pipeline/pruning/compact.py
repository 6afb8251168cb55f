"""Compaction: turn a structured mask into a physically smaller network with the same outputs.

Every layer keeps the units that are alive in any direction (a direction with fewer living units keeps
some dead ones, whose outgoing weights are zero, so one nn.LSTM/GRU/RNN per layer still fits both).
The result is a plain `RNNNet` with per-layer hidden sizes and no masks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.pruning import masks
from pipeline.pruning.groups import alive, unit_masks, unit_slots


def unit_level_masks(net: nn.Module) -> dict[str, Tensor]:
    """Masks of every tensor a hidden unit touches (all-True where a tensor has none), checked to be
    whole units: compaction of single-weight masks would change the outputs, so it is refused."""
    current, params, slots = masks.read(net), dict(net.named_parameters()), unit_slots(net)
    names = {n for s in slots for n in (*s.rows, *(c for c, _ in s.cols))}
    full = {n: current.get(n, torch.ones_like(params[n], dtype=torch.bool)) for n in names}
    living = {s.key: alive(s, full) for s in slots}
    whole = unit_masks(slots, living, {n: torch.ones_like(m) for n, m in full.items()})
    if any(not torch.equal(full[n], whole[n]) for n in names):
        raise ValueError("compact() needs a structured mask (whole hidden units); this one prunes single weights")
    return full


def kept_units(net: nn.Module) -> list[list[Tensor]]:
    """Per layer, per direction: indices of the units the compacted layer keeps (equal counts)."""
    full = unit_level_masks(net)
    by_layer: dict[int, list[Tensor]] = {}
    for slot in unit_slots(net):
        by_layer.setdefault(slot.layer, []).append(alive(slot, full))
    out = []
    for living in by_layer.values():
        width = max(1, *(int(v.sum()) for v in living))
        # living units first, then dead ones to pad: order within each group stays ascending
        out.append([torch.sort(torch.argsort((~v).int(), stable=True)[:width]).values for v in living])
    return out


def compact(net: nn.Module) -> nn.Module:
    """A smaller network of the same class whose outputs equal `net`'s with its masks applied."""
    keep, state = kept_units(net), masks.fold(net)
    config = {**net.config, "hidden_size": [len(k[0]) for k in keep], "num_layers": len(keep)}
    small = type(net)(**config)
    # what hidden units do not touch (an input embedding) is kept as it is
    new_state = {k: v for k, v in state.items() if not k.startswith(("layers.", "head."))}
    previous = None
    for i, (layer, directions) in enumerate(zip(net.layers, keep, strict=True)):
        gates = layer.weight_ih_l0.shape[0] // layer.hidden_size
        for d, units in enumerate(directions):
            prefix, sfx = f"layers.{i}.", "_reverse" if d else ""
            rows = torch.cat([g * layer.hidden_size + units for g in range(gates)])
            cols = torch.arange(layer.input_size) if previous is None else previous
            new_state[f"{prefix}weight_ih_l0{sfx}"] = state[f"{prefix}weight_ih_l0{sfx}"][rows][:, cols]
            new_state[f"{prefix}weight_hh_l0{sfx}"] = state[f"{prefix}weight_hh_l0{sfx}"][rows][:, units]
            for bias in ("bias_ih_l0", "bias_hh_l0"):
                if f"{prefix}{bias}{sfx}" in state:
                    new_state[f"{prefix}{bias}{sfx}"] = state[f"{prefix}{bias}{sfx}"][rows]
        previous = torch.cat([d * layer.hidden_size + units for d, units in enumerate(directions)])
    new_state["head.weight"] = state["head.weight"][:, previous]
    new_state["head.bias"] = state["head.bias"]
    small.load_state_dict(new_state)
    return small


def macs_per_step(net: nn.Module) -> int:
    """Multiply-accumulates of the recurrent layers per time step: sum of G * H * (in + H) per direction."""
    total = 0
    for layer in net.modules():
        if isinstance(layer, nn.RNNBase):
            gates = layer.weight_ih_l0.shape[0] // layer.hidden_size
            total += (
                (2 if layer.bidirectional else 1) * gates * layer.hidden_size * (layer.input_size + layer.hidden_size)
            )
    return total
