"""Discovery of what can be pruned: every recurrent weight matrix, in all layers and directions.

Lightning's `ModelPruning` looks only for parameters named `weight`, so it misses `weight_ih_l{k}` and
`weight_hh_l{k}[_reverse]` of `nn.RNN`/`nn.LSTM`/`nn.GRU`; this module finds them by the modules' type.
"""

from __future__ import annotations

import re

from torch import nn

RECURRENT_WEIGHT = re.compile(r"weight_(ih|hh)_l\d+(_reverse)?$")

# What one pruning decision removes. Single weights for now; hidden units come with structured pruning.
GRANULARITIES = {"unstructured": "single weights"}


def prunable(model: nn.Module, include_head: bool = True, head: str = "head") -> list[str]:
    """Names of the prunable parameters: recurrent weight matrices, plus the head's Linear weight."""
    names = []
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        if isinstance(module, nn.RNNBase):
            names += [prefix + p for p, _ in module.named_parameters(recurse=False) if RECURRENT_WEIGHT.match(p)]
        elif include_head and isinstance(module, nn.Linear) and module_name.split(".")[-1] == head:
            names.append(prefix + "weight")
    return names
