"""Selection: pure functions from importance scores and current masks to new, smaller masks.

A rule (`rule`) picks what to keep among scored items: the best share per tensor (`local`), the best
share of all items ranked together (`global`), or everything scoring at least a threshold. A granularity
applies a rule to single weights or to whole hidden units (see groups.py). Masks only shrink: pruned
items rank lowest and stay pruned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from pipeline.pruning.groups import alive, unit_masks, unit_scores, unit_slots

Masks = dict[str, Tensor]
Rule = Callable[[Mapping[str, Tensor], Masks], Masks]


def select_local(scores: Mapping[str, Tensor], masks: Masks, target: float) -> Masks:
    """Per tensor, keep the highest-scoring items so that each tensor reaches `target` sparsity."""
    return {name: _keep_top(scores[name], masks[name], target) for name in scores}


def select_global(scores: Mapping[str, Tensor], masks: Masks, target: float) -> Masks:
    """Rank all items together; the whole set reaches `target` sparsity."""
    names = list(scores)
    flat_scores = torch.cat([scores[n].flatten() for n in names])
    flat_keep = _keep_top(flat_scores, torch.cat([masks[n].flatten() for n in names]), target)
    chunks = torch.split(flat_keep, [masks[n].numel() for n in names])
    return {n: chunk.view_as(masks[n]) for n, chunk in zip(names, chunks, strict=True)}


def select_threshold(scores: Mapping[str, Tensor], masks: Masks, threshold: float) -> Masks:
    """Keep exactly the items that score at least `threshold` (and were kept before)."""
    return {name: masks[name] & (scores[name] >= threshold) for name in scores}


SCOPES: dict[str, Callable[[Mapping[str, Tensor], Masks, float], Masks]] = {
    "local": select_local,
    "global": select_global,
}


def rule(scope: str, target: float, threshold: float | None = None) -> Rule:
    """The selection rule of a round: by threshold if one is given, else by target sparsity in a scope."""
    if threshold is not None:
        return lambda scores, masks: select_threshold(scores, masks, threshold)
    return lambda scores, masks: SCOPES[scope](scores, masks, target)


def unstructured(model: nn.Module, scores: Mapping[str, Tensor], masks: Masks, keep: Rule, reduce: str) -> Masks:
    """Apply the rule to single weights."""
    return keep(scores, masks)


def structured(model: nn.Module, scores: Mapping[str, Tensor], masks: Masks, keep: Rule, reduce: str) -> Masks:
    """Apply the rule to hidden units (scores aggregated over each unit's group); every slot keeps one."""
    slots = unit_slots(model)
    per_unit = {s.key: unit_scores(s, dict(scores), reduce) for s in slots}
    living = {s.key: alive(s, masks) for s in slots}
    kept = keep(per_unit, living)
    for key, k in kept.items():
        if not k.any():  # a layer without units would cut the network: keep its best living unit
            k[per_unit[key].masked_fill(~living[key], float("-inf")).argmax()] = True
    return unit_masks(slots, kept, masks)


GRANULARITIES: dict[str, Callable[[nn.Module, Mapping[str, Tensor], Masks, Rule, str], Masks]] = {
    "unstructured": unstructured,
    "structured": structured,
}


def _keep_top(score: Tensor, keep: Tensor, target: float) -> Tensor:
    # Already-pruned items rank lowest, so they count towards the target and stay pruned.
    score = score.float().masked_fill(~keep, float("-inf")).flatten()
    n_prune = min(score.numel(), round(target * score.numel()))
    out = torch.ones_like(score, dtype=torch.bool)
    if n_prune > 0:
        out[torch.topk(score, n_prune, largest=False).indices] = False
    return out.view_as(keep) & keep
