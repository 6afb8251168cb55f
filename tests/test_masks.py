"""The pure pruning maths: selection meets its target exactly, masks only shrink, schedules."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.models import RNNNet
from pipeline.pruning import masks, select
from pipeline.pruning.groups import prunable
from pipeline.pruning.schedules import SCHEDULES


def _scores_and_masks(shapes, seed, already):
    g = torch.Generator().manual_seed(seed)
    scores = {f"w{i}": torch.rand(s, generator=g) for i, s in enumerate(shapes)}
    current = {k: torch.rand(v.shape, generator=g) >= already for k, v in scores.items()}
    return scores, current


shapes = st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(shapes=shapes, seed=st.integers(0, 10_000), already=st.floats(0.0, 0.5), extra=st.floats(0.0, 0.49))
def test_global_selection_hits_target_exactly_and_only_shrinks(shapes, seed, already, extra) -> None:
    scores, current = _scores_and_masks(shapes, seed, already)
    target = masks.sparsity(current) + extra * (1 - masks.sparsity(current))
    new = select.select_global(scores, current, target)
    total = sum(m.numel() for m in current.values())
    assert sum(int((~m).sum()) for m in new.values()) == min(total, round(target * total))
    assert all(bool((new[k] <= current[k]).all()) for k in current)  # pruned stays pruned


@settings(max_examples=60, deadline=None)
@given(shapes=shapes, seed=st.integers(0, 10_000), already=st.floats(0.0, 0.5), target=st.floats(0.5, 0.99))
def test_local_selection_hits_target_per_tensor(shapes, seed, already, target) -> None:
    scores, current = _scores_and_masks(shapes, seed, already)
    new = select.select_local(scores, current, target)
    for k, m in new.items():
        assert int((~m).sum()) == max(int((~current[k]).sum()), round(target * m.numel()))
        assert bool((m <= current[k]).all())


def test_selection_prunes_the_lowest_scores() -> None:
    scores = {"a": torch.tensor([[0.1, 0.9], [0.5, 0.3]]), "b": torch.tensor([0.2, 0.8])}
    full = {k: torch.ones_like(v, dtype=torch.bool) for k, v in scores.items()}
    new = select.select_global(scores, full, 0.5)
    assert new["a"].tolist() == [[False, True], [True, False]] and new["b"].tolist() == [False, True]
    by_threshold = select.select_threshold(scores, full, 0.4)
    assert by_threshold["a"].tolist() == [[False, True], [True, False]] and by_threshold["b"].tolist() == [False, True]


@pytest.mark.parametrize("n", [1, 3, 5])
@pytest.mark.parametrize("amount", [0.5, 0.9, 0.99])
def test_schedules_reach_the_amount_and_never_decrease(n: int, amount: float) -> None:
    for name, schedule in SCHEDULES.items():
        targets = [schedule(r, n, amount) for r in range(n + 1)]
        assert targets[0] == 0.0 and math.isclose(targets[-1], amount), name
        assert targets == sorted(targets), name
    # iterative: every round keeps the same share of what remained
    density = [1 - SCHEDULES["iterative"](r, n, amount) for r in range(n + 1)]
    assert all(math.isclose(density[r + 1] / density[r], (1 - amount) ** (1 / n)) for r in range(n))


def test_buffers_fold_and_statistics() -> None:
    net = RNNNet(cell="gru", input_size=3, hidden_size=4, num_layers=2, bidirectional=True, num_outputs=2)
    names = prunable(net)
    assert sorted(names) == sorted(
        [f"layers.{i}.weight_{k}_l0{s}" for k in ("ih", "hh") for i in (0, 1) for s in ("", "_reverse")]
        + ["head.weight"]
    )
    masks.attach(net, names)
    dense_bytes = masks.model_bytes(net)
    assert masks.sparsity(masks.read(net)) == 0.0
    scores = {n: p.detach().abs() for n, p in net.named_parameters() if n in names}
    masks.update(net, select.select_global(scores, masks.read(net), 0.75))
    params = dict(net.named_parameters())
    assert all(bool((params[n][~m] == 0).all()) for n, m in masks.read(net).items())
    assert masks.sparsity(masks.read(net)) == pytest.approx(0.75, abs=1e-3)
    assert masks.model_bytes(net) < 0.4 * dense_bytes
    total = sum(p.numel() for p in net.parameters())
    pruned = sum(int((~m).sum()) for m in masks.read(net).values())
    assert masks.nonzero_params(net) == total - pruned
    folded = masks.fold(net)
    assert not any(k.endswith(masks.SUFFIX) for k in folded)
    fresh = RNNNet(cell="gru", input_size=3, hidden_size=4, num_layers=2, bidirectional=True, num_outputs=2)
    fresh.load_state_dict(folded)
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 2])
    assert torch.equal(fresh(x, lengths), net(x, lengths))


def test_compact_refuses_a_single_weight_mask() -> None:
    from pipeline.pruning.compact import compact

    net = RNNNet("gru", input_size=3, hidden_size=4, num_layers=1, bidirectional=False, num_outputs=3)
    masks.attach(net, prunable(net))
    partial = {k: v.clone() for k, v in masks.read(net).items()}
    partial["layers.0.weight_ih_l0"].view(3, 4, 3)[:, 0] = False  # unit 0 loses its inputs, keeps the rest
    masks.update(net, partial)
    with pytest.raises(ValueError, match="structured mask"):
        compact(net)
