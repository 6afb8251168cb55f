"""Sparsity per gate is read exactly from the masks; int8 quantization keeps outputs and shrinks the file."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.ao.nn.quantized import dynamic as nnqd

from pipeline.models import RNNModule, RNNNet
from pipeline.plots import gate_heatmap
from pipeline.pruning import masks
from pipeline.pruning.gates import gate_sparsity
from pipeline.pruning.groups import prunable
from pipeline.quantize import quantize, state_bytes

H, GATE_COUNT = 5, {"rnn": 1, "lstm": 4, "gru": 3}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _net(cell: str, hidden: int = H, seed: int = 0) -> RNNNet:
    torch.manual_seed(seed)
    return RNNNet(cell, input_size=3, hidden_size=hidden, num_layers=2, bidirectional=True, num_outputs=4).eval()


def _inputs(n: int = 64, t: int = 12, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, t, 3, generator=g), torch.randint(1, t + 1, (n,), generator=g)  # variable lengths


def _sparsities(rows: list[dict]) -> dict[tuple, float]:
    return {(r["layer"], r["direction"], r["matrix"], r["gate"]): r["sparsity"] for r in rows}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gate_sparsity_reads_the_masks_exactly(cell: str, tmp_path) -> None:
    module = RNNModule(cell=cell, input_size=3, hidden_size=H, num_layers=2, bidirectional=True, num_outputs=4)
    net = module.net
    masks.attach(net, prunable(net))
    index = 0 if cell == "rnn" else 1  # a plain RNN has a single gate
    gate_rows = torch.ones_like(net.layers[0].weight_hh_l0, dtype=torch.bool)  # (G * H, H)
    gate_rows[index * H : (index + 1) * H] = False
    head = torch.ones_like(net.head.weight, dtype=torch.bool)  # (4, 2 * H)
    head[:2] = False
    masks.update(net, {"layers.0.weight_hh_l0": gate_rows, "head.weight": head})
    with torch.no_grad():
        net.layers[1].weight_hh_l0[0, 0] = 0.0  # a zero the mask keeps is not pruned

    rows = gate_sparsity(module)  # found through the LightningModule's `net` attribute
    gates = ["h"] if cell == "rnn" else (["i", "f", "g", "o"] if cell == "lstm" else ["r", "z", "n"])
    assert len(rows) == 2 * 2 * 2 * GATE_COUNT[cell] + 1
    assert [r["gate"] for r in rows[: len(gates)]] == gates
    expected = {(0, "forward", "hh", gates[index]): 1.0, ("head", "-", "-", "-"): 0.5}
    assert _sparsities(rows) == {k: expected.get(k, 0.0) for k in _sparsities(rows)}
    assert {r["total"] for r in rows[:-1]} == {H * 3, H * H, H * 2 * H}  # ih of layer 0, hh, ih of layer 1
    assert rows[-1]["pruned"] == rows[-1]["total"] // 2 == 20

    png = gate_heatmap(rows, tmp_path / "plots" / "gates.png", title=cell)
    assert png == tmp_path / "plots" / "gates.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 1000


def test_gate_sparsity_counts_zeros_without_masks() -> None:
    net = _net("gru")
    with torch.no_grad():
        net.layers[1].weight_ih_l0_reverse[2 * H : 2 * H + 2].zero_()  # 2 of the 5 rows of gate n
    sparsity = _sparsities(gate_sparsity(net))
    assert sparsity[(1, "reverse", "ih", "n")] == pytest.approx(0.4)
    assert sum(v > 0 for v in sparsity.values()) == 1


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_quantized_net_matches_float_and_is_smaller(cell: str) -> None:
    net, (x, lengths) = _net(cell, hidden=16), _inputs()
    qnet = quantize(net)
    assert isinstance(net.layers[0], getattr(nn, cell.upper()))  # the original is left float
    assert isinstance(qnet.layers[0], nnqd.LSTM if cell == "lstm" else nnqd.GRU)
    with torch.no_grad():
        ref, out = net(x, lengths), qnet(x, lengths)  # (B, 4), over packed variable-length input
    assert (out - ref).abs().max() < 0.1
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.9
    big = _net(cell, hidden=64)
    assert state_bytes(quantize(big)) < 0.5 * state_bytes(big)


def test_plain_rnn_layers_stay_float() -> None:
    net, (x, lengths) = _net("rnn", hidden=16), _inputs()
    qnet = quantize(net)
    assert type(qnet.layers[0]) is nn.RNN and isinstance(qnet.head, nnqd.Linear)
    with torch.no_grad():
        assert (qnet(x, lengths) - net(x, lengths)).abs().max() < 0.1


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_quantized_pruned_and_folded_net_runs_and_keeps_zeros(cell: str) -> None:
    net, (x, lengths) = _net(cell, hidden=16), _inputs()
    masks.attach(net, prunable(net))
    g = torch.Generator().manual_seed(2)
    masks.update(net, {name: torch.rand(m.shape, generator=g) < 0.5 for name, m in masks.read(net).items()})
    plain = _net(cell, hidden=16, seed=1)
    plain.load_state_dict(masks.fold(net))  # strict: no mask buffers left over

    qnet = quantize(plain)
    with torch.no_grad():
        out, ref = qnet(x, lengths), plain(x, lengths)
    assert out.shape == (64, 4) and torch.isfinite(out).all()
    assert (out - ref).abs().max() < 0.1
    head = qnet.head.weight().dequantize()  # symmetric int8: 0 maps to exactly 0
    assert torch.equal(head == 0, ~masks.read(net)["head.weight"])
