"""Property tests of the pruning engine over cell x layers x directions x granularity x criterion x scope.

Each example builds a tiny RNNNet, prunes it in 1..3 steps of growing target the way PruningCallback.prune
does (scores from a criterion, a rule, a granularity, `masks.update`), and checks an invariant the rest of
the pipeline relies on. Hidden-unit groups are rebuilt here from the layer shapes, not from groups.py, so a
wrong slot or offset in the engine shows up as a mismatch instead of being shared by the test.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from pipeline.models import RNNNet
from pipeline.pruning import masks
from pipeline.pruning.compact import compact
from pipeline.pruning.criteria import CRITERIA, mean_abs_grads
from pipeline.pruning.groups import hidden_units, prunable
from pipeline.pruning.select import GRANULARITIES, SCOPES, rule
from pipeline.quantize import quantize

INPUTS, OUTPUTS = 3, 3


@dataclass(frozen=True)
class Case:
    """A tiny network and a pruning recipe: targets grow step by step."""

    cell: str
    hidden: int
    layers: int
    bidirectional: bool
    granularity: str
    criterion: str
    scope: str
    targets: tuple[float, ...]
    seed: int

    def net(self) -> RNNNet:
        torch.manual_seed(self.seed)
        net = RNNNet(self.cell, INPUTS, self.hidden, self.layers, self.bidirectional, 0.0, OUTPUTS)
        masks.attach(net, prunable(net))
        return net


ANY_GRANULARITY = st.sampled_from(sorted(GRANULARITIES))
ANY_LAYERS = st.integers(1, 3)


@st.composite
def cases(
    draw: st.DrawFn, granularity: st.SearchStrategy[str] = ANY_GRANULARITY, layers: st.SearchStrategy[int] = ANY_LAYERS
) -> Case:
    targets = sorted(draw(st.lists(st.floats(0.05, 0.95), min_size=1, max_size=3)))
    return Case(
        cell=draw(st.sampled_from(["rnn", "lstm", "gru"])),
        hidden=draw(st.integers(2, 6)),
        layers=draw(layers),
        bidirectional=draw(st.booleans()),
        granularity=draw(granularity),
        criterion=draw(st.sampled_from(sorted(CRITERIA))),
        scope=draw(st.sampled_from(sorted(SCOPES))),
        targets=tuple(targets),
        seed=draw(st.integers(0, 2**16)),
    )


structured_cases = cases(st.just("structured"))


def batch(seed: int, size: int = 5, steps: int = 6) -> tuple[Tensor, Tensor, Tensor]:
    """Random padded inputs (B, T, C), lengths (B,) from 1 to T (both ends present), and labels (B,)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (size,), generator=g)
    lengths[0], lengths[-1] = steps, 1
    return torch.randn(size, steps, INPUTS, generator=g), lengths, torch.randint(0, OUTPUTS, (size,), generator=g)


def prune(net: RNNNet, case: Case, step: int, target: float) -> None:
    """One pruning step, scored and selected as PruningCallback.prune does."""
    criterion, current = CRITERIA[case.criterion], masks.read(net)
    params = dict(net.named_parameters())
    grads = dict.fromkeys(current)
    if criterion.needs_grad:
        batches = [batch(case.seed + 100 * step + i) for i in range(2)]
        grads = mean_abs_grads(net, lambda b: F.cross_entropy(net(b[0], b[1]), b[2]), batches, list(current))
    generator = torch.Generator().manual_seed(case.seed * 1_000 + step)
    scores = {name: criterion.score(params[name], grads[name], generator) for name in current}
    keep = rule(case.scope, target)
    masks.update(net, GRANULARITIES[case.granularity](net, scores, current, keep, criterion.reduce))


def pruned(case: Case) -> RNNNet:
    """The case's network after all its pruning steps."""
    net = case.net()
    for step, target in enumerate(case.targets, start=1):
        prune(net, case, step, target)
    return net.eval()


# --- hidden-unit groups, rebuilt from the layer shapes ------------------------------------------------


def slots(net: RNNNet) -> list[tuple[int, int, int, int]]:
    """(layer, direction, H, gates) of every recurrent layer and direction."""
    out = []
    for i, layer in enumerate(net.layers):
        gates = layer.weight_ih_l0.shape[0] // layer.hidden_size
        out += [(i, d, layer.hidden_size, gates) for d in range(net.directions)]
    return out


def dead_units(net: RNNNet, current: dict[str, Tensor]) -> dict[tuple[int, int], Tensor]:
    """(layer, direction) -> (H,) bool: units none of whose incoming W_ih weights (any gate) is kept."""
    out = {}
    for i, d, h, gates in slots(net):
        rows = current[f"layers.{i}.weight_ih_l0{'_reverse' if d else ''}"].view(gates, h, -1)  # (G, H, in)
        out[(i, d)] = ~rows.any(dim=(0, 2))
    return out


def group_masks(net: RNNNet, dead: dict[tuple[int, int], Tensor]) -> dict[str, Tensor]:
    """The masks that remove exactly the dead units' groups: rows, own column, outgoing columns."""
    out = {name: torch.ones_like(p, dtype=torch.bool) for name, p in net.named_parameters() if "weight" in name}
    for i, d, h, gates in slots(net):
        gone, sfx = dead[(i, d)], "_reverse" if d else ""
        for kind in ("ih", "hh"):
            out[f"layers.{i}.weight_{kind}_l0{sfx}"].view(gates, h, -1)[:, gone] = False  # every gate's row
        out[f"layers.{i}.weight_hh_l0{sfx}"][:, gone] = False  # its own recurrence
        outgoing = [f"layers.{i + 1}.weight_ih_l0{s}" for s in ("", "_reverse")[: net.directions]]
        for name in outgoing if i + 1 < len(net.layers) else ["head.weight"]:
            out[name][:, d * h : (d + 1) * h][:, gone] = False  # what flows out, into both directions
    return out


def assert_zero_where_masked(net: RNNNet) -> None:
    params = dict(net.named_parameters())
    for name, keep in masks.read(net).items():
        assert bool((params[name][~keep] == 0).all()), name


# --- 1 + 2: masks only shrink, and each step meets its target within one weight or unit ----------------


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_masks_only_shrink_and_each_step_meets_its_target(case: Case) -> None:
    net = case.net()
    for step, target in enumerate(case.targets, start=1):
        before = {k: m.clone() for k, m in masks.read(net).items()}
        dead_before = dead_units(net, before)
        prune(net, case, step, target)
        after = masks.read(net)
        assert all(bool((after[k] <= before[k]).all()) for k in before), "a pruned weight came back"
        assert_zero_where_masked(net)
        if case.granularity == "unstructured":
            check_unstructured_target(before, after, case.scope, target)
        else:
            dead = dead_units(net, after)
            assert all(bool((dead[s] >= dead_before[s]).all()) for s in dead), "a removed unit came back"
            check_structured_target(dead_before, dead, case.scope, target)
            expected = group_masks(net, dead)
            for name, keep in after.items():  # exactly the removed units' groups, nothing more or less
                assert torch.equal(keep, expected[name]), name


def check_unstructured_target(before: dict, after: dict, scope: str, target: float) -> None:
    def count(ms: dict, names: list[str]) -> int:
        return sum(int((~ms[n]).sum()) for n in names)

    groups = [[n] for n in after] if scope == "local" else [list(after)]
    for names in groups:  # per tensor (local) or all weights together (global)
        n = sum(after[k].numel() for k in names)
        assert count(after, names) == max(count(before, names), round(target * n)), names


def check_structured_target(dead_before: dict, dead: dict, scope: str, target: float) -> None:
    sizes = {s: d.numel() for s, d in dead.items()}
    kept = {s: int((~d).sum()) for s, d in dead.items()}
    assert min(kept.values()) >= 1, "a layer direction lost all its units"
    if scope == "local":
        for s, h in sizes.items():
            removed = max(int(dead_before[s].sum()), round(target * h))
            assert int(dead[s].sum()) == min(h - 1, removed), s
    else:
        total = sum(sizes.values())
        asked = max(sum(int(d.sum()) for d in dead_before.values()), round(target * total))
        got = sum(int(d.sum()) for d in dead.values())
        # A slot emptied by the global ranking gets its best unit back: it then keeps exactly one unit.
        assert asked - sum(k == 1 for k in kept.values()) <= got <= asked


# --- 3: compaction keeps outputs, shrinks the net, and counts units consistently -----------------------


@settings(max_examples=40, deadline=None)
@given(case=structured_cases)
def test_compacted_net_equals_the_masked_net(case: Case) -> None:
    net = pruned(case)
    small = compact(net).eval()
    dead = dead_units(net, masks.read(net))
    widths = [max(int((~dead[(i, d)]).sum()) for d in range(net.directions)) for i in range(case.layers)]
    assert [layer.hidden_size for layer in small.layers] == widths  # units alive in either direction
    for seed in range(2):
        x, lengths, _ = batch(case.seed + seed)
        with torch.no_grad():
            assert torch.allclose(small(x, lengths), net(x, lengths), atol=1e-5)

    n_params = sum(p.numel() for p in small.parameters())
    assert n_params == sum(p.numel() for p in RNNNet(**small.config).parameters())
    if min(widths) < case.hidden:
        assert n_params < sum(p.numel() for p in net.parameters())
    if not case.bidirectional and any(bool(d.any()) for d in dead.values()):
        assert min(widths) < case.hidden  # one direction: any removed unit makes the net smaller
    small_units = sum(layer.hidden_size for layer in small.layers) * small.directions
    living = sum(int((~d).sum()) for d in dead.values())
    assert hidden_units(net, masks.read(net)) == living <= small_units  # padding only adds dead units
    if not case.bidirectional:
        assert living == small_units


# --- 4: pruned weights stay zero while training goes on ------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    "adam": lambda p: torch.optim.Adam(p, lr=0.05),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
}


def train_step(net: RNNNet, optimizer: torch.optim.Optimizer, seed: int, masked: bool) -> None:
    x, lengths, y = batch(seed)
    optimizer.zero_grad()
    F.cross_entropy(net(x, lengths), y).backward()
    if masked:
        masks.mask_grads(net)
        params = dict(net.named_parameters())
        assert all(bool((params[k].grad[~m] == 0).all()) for k, m in masks.read(net).items())
    optimizer.step()
    if masked:
        masks.apply(net)


@settings(max_examples=20, deadline=None)
@given(case=cases(), optimizer=st.sampled_from(sorted(OPTIMIZERS)))
def test_pruned_weights_stay_zero_through_training(case: Case, optimizer: str) -> None:
    net = case.net().train()
    opt = OPTIMIZERS[optimizer](net.parameters())
    for i in range(2):  # dense steps first, so momentum / Adam moments of soon-pruned weights are not zero
        train_step(net, opt, case.seed + i, masked=False)
    for step, target in enumerate(case.targets, start=1):
        prune(net, case, step, target)
    start = {k: v.detach().clone() for k, v in net.named_parameters()}
    for i in range(3):
        train_step(net, opt, case.seed + 10 + i, masked=True)
        assert_zero_where_masked(net)
    current = masks.read(net)
    moved = [bool((v[current[k]] != start[k][current[k]]).any()) for k, v in net.named_parameters() if k in current]
    assert any(moved), "training did not change any kept weight: the test would be vacuous"


# --- 5: a pruned net and its compacted net are ordinary modules ----------------------------------------


def assert_same_after_copy_reload_script(net: RNNNet, fresh: RNNNet, x: Tensor, lengths: Tensor) -> None:
    with torch.no_grad():
        expected = net(x, lengths)
        assert torch.equal(copy.deepcopy(net)(x, lengths), expected)
        fresh.load_state_dict(net.state_dict())  # strict: mask buffers travel as ordinary buffers
        assert torch.equal(fresh.eval()(x, lengths), expected)
        assert torch.allclose(torch.jit.script(net)(x, lengths), expected, atol=1e-6)


def assert_quantized_runs(net: RNNNet, x: Tensor, lengths: Tensor) -> None:
    with torch.no_grad():
        out = quantize(net)(x, lengths)
    assert out.shape == (len(x), OUTPUTS) and bool(torch.isfinite(out).all())


@settings(max_examples=8, deadline=None)
@given(case=cases())
def test_pruned_and_compacted_nets_survive_copy_reload_script_and_quantization(case: Case) -> None:
    net, (x, lengths, _) = pruned(case), batch(case.seed)
    fresh = RNNNet(**net.config)
    masks.attach(fresh, prunable(fresh))
    assert_same_after_copy_reload_script(net, fresh, x, lengths)
    assert all(torch.equal(masks.read(fresh)[k], m) for k, m in masks.read(net).items())
    assert_zero_where_masked(fresh)

    plain = RNNNet(**net.config).eval()
    plain.load_state_dict(masks.fold(net))  # strict: no mask buffers left over
    with torch.no_grad():
        assert torch.equal(plain(x, lengths), net(x, lengths))
    assert_quantized_runs(plain, x, lengths)
    if case.granularity == "structured":
        small = compact(net).eval()
        assert_same_after_copy_reload_script(small, RNNNet(**small.config), x, lengths)
        assert_quantized_runs(small, x, lengths)


# --- ONNX: the TorchScript exporter maps packed sequences to ONNX's sequence_lens ----------------------
#
# It needs the packed output of every recurrent layer to be consumed, which RNNNet.forward does.
# The dynamo exporter cannot trace packed sequences at all (documented below as an expected failure).


def onnx_bytes(net: RNNNet, x: Tensor, lengths: Tensor) -> bytes:
    """The net exported by the TorchScript-based (legacy) exporter, batch and time axes dynamic."""
    buffer = io.BytesIO()
    axes = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"}}
    names = {"input_names": ["x", "lengths"], "output_names": ["logits"], "dynamic_axes": axes}
    torch.onnx.export(net, (x, lengths), buffer, dynamo=False, **names)
    return buffer.getvalue()


def assert_onnx_matches(net: RNNNet, seed: int) -> None:
    import onnx
    from onnx.reference import ReferenceEvaluator

    x, lengths, _ = batch(seed)
    model = onnx.load_from_string(onnx_bytes(net, x, lengths))
    onnx.checker.check_model(model, full_check=True)
    # onnx's reference LSTM/GRU/RNN ignore sequence_lens, so compare it on full-length sequences only.
    full_x, full_lengths = torch.randn(4, 7, INPUTS), torch.full((4,), 7)
    out = ReferenceEvaluator(model).run(None, {"x": full_x.numpy(), "lengths": full_lengths.numpy()})[0]
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(out), net(full_x, full_lengths), atol=1e-5)
    try:  # onnxruntime honours sequence_lens: variable lengths, another batch size and length than exported
        import onnxruntime
    except ImportError:
        return
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x, lengths, _ = batch(seed + 1, size=7, steps=9)
    out = session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})[0]
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(out), net(x, lengths), atol=1e-5)


@settings(max_examples=8, deadline=None)
@given(case=cases(layers=st.integers(2, 3)))
def test_pruned_and_compacted_nets_export_to_onnx(case: Case) -> None:
    net = pruned(case)
    assert_onnx_matches(net, case.seed)
    if case.granularity == "structured":
        assert_onnx_matches(compact(net).eval(), case.seed)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_one_layer_net_exports_to_onnx(cell: str) -> None:
    assert_onnx_matches(RNNNet(cell, INPUTS, 4, 1, True, 0.0, OUTPUTS).eval(), 0)


def test_dynamo_onnx_export_cannot_trace_packed_sequences() -> None:
    pytest.importorskip("onnxscript")
    net, (x, lengths, _) = RNNNet("lstm", INPUTS, 4, 2, True, 0.0, OUTPUTS).eval(), batch(0)
    try:
        program = torch.onnx.export(net, (x, lengths), dynamo=True)
    except Exception as error:  # torch.onnx wraps the torch.export failure in a private error class
        if "Failed to export the model with torch.export" not in str(error):
            raise
        root = error
        while root.__cause__ is not None:
            root = root.__cause__
        pytest.xfail(
            "torch.export cannot trace RNNNet.forward: nn.LSTM on a PackedSequence sizes its zero state by "
            f"batch_sizes[0], a tensor; {type(root).__name__}: {root}. The legacy exporter (dynamo=False) works."
        )
    x, lengths = torch.randn(4, 7, INPUTS), torch.full((4,), 7)  # if torch learns it: check it like the other
    with torch.no_grad():
        assert torch.allclose(program(x, lengths)[0], net(x, lengths), atol=1e-5)
