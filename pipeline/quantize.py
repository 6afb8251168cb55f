"""Post-training int8 dynamic quantization of a trained (possibly pruned) network, and its stored size.

Dynamic quantization stores LSTM/GRU and Linear weights as int8 and quantizes activations on the fly,
so it needs no calibration data and composes with pruning: a pruned weight is 0 and stays exactly 0
under the symmetric int8 weight scheme.
"""

from __future__ import annotations

import copy
import io
import warnings

import torch
from torch import nn
from torch.ao.quantization import quantize_dynamic

# nn.RNN (tanh/relu cells) has no dynamic quantized module in PyTorch: its layers stay float32,
# and only the head of an "rnn" network shrinks.
QUANTIZABLE: set[type[nn.Module]] = {nn.LSTM, nn.GRU, nn.Linear}


def quantize(net: nn.Module) -> nn.Module:
    """An int8 dynamically quantized copy of a plain net (no mask buffers: load `masks.fold` output first)."""
    # Mask buffers would be dropped silently from quantized LSTM/GRU/Linear modules but kept on float ones.
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which this project does not ship;
        # the eager API still works, so keep its warnings out of every run's logs.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantize_per_(tensor|channel).*", category=UserWarning)
        return quantize_dynamic(copy.deepcopy(net), QUANTIZABLE, dtype=torch.qint8)


def state_bytes(net: nn.Module) -> int:
    """Bytes of `torch.save(net.state_dict())`, written to memory (float or quantized nets)."""
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    return buffer.getbuffer().nbytes
