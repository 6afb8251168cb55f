"""Engine features on a real (tiny) LSTM: the stop rule, lottery rewinding, penalties, gradient criteria,
and a structured, quantized prune run end to end through MLflow."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline import runner
from pipeline.models import RNNNet
from pipeline.pruning import masks, penalties
from pipeline.pruning.groups import alive, hidden_units, prunable, unit_slots
from pipeline.pruning.schedules import SCHEDULES
from pipeline.tracking import load_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


class Probe(pl.Callback):
    """Snapshots of the module around the pruning callback's hooks.

    `end[e]`: parameters after training epoch e (what round evaluations see before the next prune).
    `first[e]`: at the first batch of epoch e, after this epoch's prune (and rewind), before any step:
    parameters, masks, gradients and the optimizer's state size. `masked_grads`: after every step, whether
    the gradients of pruned weights were zero.
    """

    def __init__(self) -> None:
        self.end: dict[int, dict[str, torch.Tensor]] = {}
        self.first: dict[int, dict] = {}
        self.masked_grads: list[bool] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            self.first[trainer.current_epoch] = {
                "params": _params(pl_module),
                "masks": {k: m.clone() for k, m in masks.read(pl_module).items()},
                "grads": {n: p.grad for n, p in pl_module.named_parameters()},
                "optimizer_state": len(trainer.optimizers[0].state),
            }

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        params = dict(pl_module.named_parameters())
        self.masked_grads.append(
            all(
                params[k].grad is None or bool((params[k].grad[~m] == 0).all())
                for k, m in masks.read(pl_module).items()
            )
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.end[trainer.current_epoch] = _params(pl_module)


def fit(cfg, rounds: int, probe: Probe | None = None):
    """Fit the config's module with its pruning callback for `rounds` rounds, without logging."""
    data, module, callback = runner.build(cfg, rounds)
    trainer = pl.Trainer(
        max_epochs=callback.total_epochs,
        logger=False,
        accelerator="cpu",
        callbacks=[probe] if probe else [],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data)
    return data, module, callback


def prunable_abs_sum(module: torch.nn.Module) -> float:
    params = dict(module.named_parameters())
    return float(sum(params[name].abs().sum() for name in prunable(module)))


# --- 1. the stop rule ------------------------------------------------------------------------------


def test_tolerance_broken_by_the_first_round_restores_the_dense_model_and_stops(tiny) -> None:
    cfg = tiny("pruning.schedule=oneshot", "pruning.amount=0.99", "pruning.tolerance=0.0", "pruning.iterations=3")
    probe = Probe()
    data, module, callback = fit(cfg, rounds=3, probe=probe)
    dense_epochs = cfg.train.epochs
    val = [h["val_accuracy"] for h in callback.history]
    assert val[1] < val[0], "premise: pruning 99% of the weights must cost validation accuracy"

    assert callback.stopped_at == 1 and callback.kept_round == 0
    assert [h["round"] for h in callback.history] == [0, 1]  # nothing evaluated after the stop
    assert len(probe.end) < callback.total_epochs  # training stopped early
    # The result is the dense round: its weights (as after the last dense epoch) and all-kept masks.
    assert masks.sparsity(masks.read(module)) == 0.0
    dense = probe.end[dense_epochs - 1]
    for name, value in _params(module).items():
        assert torch.equal(value, dense[name]), name
    assert module.evaluate(data.val_dataloader())["accuracy"] == pytest.approx(val[0], abs=1e-9)


def test_generous_tolerance_never_stops_and_keeps_the_last_round(tiny) -> None:
    cfg = tiny("pruning.amount=0.9", "pruning.tolerance=1.0", "pruning.iterations=2")
    probe = Probe()
    _, module, callback = fit(cfg, rounds=2, probe=probe)
    assert callback.stopped_at is None and callback.kept_round == 2
    assert [h["round"] for h in callback.history] == [0, 1, 2]
    assert len(probe.end) == callback.total_epochs
    assert masks.sparsity(masks.read(module)) == pytest.approx(callback.history[-1]["sparsity"])
    assert callback.history[-1]["sparsity"] == pytest.approx(0.9, abs=1e-3)


# --- 2. lottery rewinding --------------------------------------------------------------------------


@pytest.mark.parametrize("rewind", [0, 1])
def test_rewind_resets_survivors_to_the_rewind_point_and_clears_the_optimizer(tiny, rewind: int) -> None:
    cfg = tiny(f"pruning.rewind={rewind}", "pruning.amount=0.7", "pruning.iterations=2")
    probe = Probe()
    fit(cfg, rounds=2, probe=probe)
    # Rewinding to 0 is checked independently of the fit: the same config builds the same initialisation.
    point = _params(runner.build(cfg, 2)[1]) if rewind == 0 else probe.end[rewind - 1]
    for r in (1, 2):
        after = probe.first[cfg.train.epochs + (r - 1) * cfg.pruning.retrain_epochs]
        assert masks.sparsity(after["masks"]) == pytest.approx(SCHEDULES["iterative"](r, 2, 0.7), abs=1e-2)
        assert after["optimizer_state"] == 0, f"round {r}: optimizer state survived the rewind"
        for name, keep in after["masks"].items():
            assert torch.equal(after["params"][name], point[name] * keep), f"round {r}: {name}"


def test_without_rewind_pruning_only_zeroes_weights_and_keeps_the_optimizer(tiny) -> None:
    cfg = tiny("pruning.amount=0.7", "pruning.iterations=1")
    probe = Probe()
    fit(cfg, rounds=1, probe=probe)
    initial = _params(runner.build(cfg, 1)[1])
    dense_epochs = cfg.train.epochs
    after = probe.first[dense_epochs]
    assert after["optimizer_state"] > 0
    assert not any(torch.equal(after["params"][n], initial[n] * keep) for n, keep in after["masks"].items())
    before = probe.end[dense_epochs - 1]
    for name, keep in after["masks"].items():
        assert torch.equal(after["params"][name], before[name] * keep), name


# --- 3. penalties ----------------------------------------------------------------------------------


def test_l1_gradient_is_the_sign_of_the_named_weights_only() -> None:
    torch.manual_seed(0)
    net = RNNNet("lstm", input_size=3, hidden_size=4, num_layers=2, bidirectional=True, num_outputs=5)
    names = prunable(net)
    with torch.no_grad():
        net.layers[0].weight_hh_l0[0, 0] = 0.0  # |w| has subgradient 0 at 0
    params = dict(net.named_parameters())
    penalty = penalties.l1(net, names)
    assert float(penalty) == pytest.approx(float(sum(params[n].abs().sum() for n in names)), rel=1e-6)
    grads = torch.autograd.grad(penalty, list(params.values()), allow_unused=True)
    for (name, p), g in zip(params.items(), grads, strict=True):
        if name in names:
            assert torch.equal(g, torch.sign(p.detach())), name
        else:
            assert g is None or not g.any(), name


def test_group_lasso_is_the_sum_of_each_units_group_norm() -> None:
    torch.manual_seed(0)
    H, G = 4, 4
    net = RNNNet("lstm", input_size=3, hidden_size=H, num_layers=1, bidirectional=False, num_outputs=5)
    w_ih, w_hh, head = (t.detach() for t in (net.layers[0].weight_ih_l0, net.layers[0].weight_hh_l0, net.head.weight))
    expected = 0.0
    for j in range(H):
        rows = [g * H + j for g in range(G)]  # unit j in every gate
        in_hh = torch.zeros_like(w_hh, dtype=torch.bool)  # (G * H, H): its rows and its own column, each weight once
        in_hh[rows] = True
        in_hh[:, j] = True
        squares = w_ih[rows].pow(2).sum() + w_hh[in_hh].pow(2).sum() + head[:, j].pow(2).sum()
        expected += float(squares.sqrt())
    assert float(penalties.group_lasso(net, unit_slots(net))) == pytest.approx(expected, rel=1e-6)


def _group_lasso_value(module: torch.nn.Module) -> float:
    return float(penalties.group_lasso(module, unit_slots(module)))


@pytest.mark.parametrize(
    ("key", "measure"), [("l1", prunable_abs_sum), ("group_lasso", _group_lasso_value)], ids=["l1", "group_lasso"]
)
def test_a_large_penalty_shrinks_what_it_penalises(tiny, key: str, measure) -> None:
    _, plain, _ = fit(tiny(), rounds=0)
    _, penalised, _ = fit(tiny(f"pruning.{key}=1.0"), rounds=0)
    assert measure(penalised) < 0.9 * measure(plain)


# --- 4. gradient criteria --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["taylor", "gradient"])
@pytest.mark.parametrize(("granularity", "scope"), [("unstructured", "global"), ("structured", "local")])
def test_gradient_criteria_reach_the_schedule_and_respect_masks(tiny, method: str, granularity: str, scope: str):
    rounds, amount = 2, 0.75
    cfg = tiny(
        f"pruning.method={method}",
        f"pruning.granularity={granularity}",
        f"pruning.scope={scope}",
        f"pruning.amount={amount}",
        f"pruning.iterations={rounds}",
        "pruning.grad_batches=2",
        "train.epochs=1",
    )
    probe = Probe()
    _, module, callback = fit(cfg, rounds=rounds, probe=probe)
    slots = unit_slots(module)
    for r in range(1, rounds + 1):
        epoch = cfg.train.epochs + (r - 1) * cfg.pruning.retrain_epochs
        after, before = probe.first[epoch], probe.end[epoch - 1]
        target, current = SCHEDULES[cfg.pruning.schedule](r, rounds, amount), after["masks"]
        if granularity == "unstructured":
            total = sum(m.numel() for m in current.values())
            assert masks.sparsity(current) == pytest.approx(target, abs=1 / total), f"round {r}"
        else:
            for slot in slots:
                removed = slot.size - int(alive(slot, current).sum())
                assert removed == round(target * slot.size), f"round {r}: {slot.key}"
            assert callback.history[r]["hidden_units"] == hidden_units(module, current)
        # The scoring passes leave no gradients behind and change no weight; pruning only zeroes.
        assert all(g is None for g in after["grads"].values()), f"round {r}: scoring left .grad populated"
        for name, value in after["params"].items():
            expected = before[name] * current[name] if name in current else before[name]
            assert torch.equal(value, expected), f"round {r}: {name}"
    assert all(probe.masked_grads)  # pruned weights never get a gradient step
    params = dict(module.named_parameters())
    assert all(bool((params[k][~m] == 0).all()) for k, m in masks.read(module).items())


def test_random_masks_depend_on_the_seed_only(tiny) -> None:
    common = ("pruning.method=random", "pruning.amount=0.5", "pruning.iterations=2", "train.epochs=1")
    _, a, _ = fit(tiny(*common), rounds=2)
    _, b, _ = fit(tiny(*common, "train.lr=0.03"), rounds=2)  # other weights, same seed
    _, c, _ = fit(tiny(*common, "train.seed=1"), rounds=2)
    ma, mb, mc = masks.read(a), masks.read(b), masks.read(c)
    assert masks.sparsity(ma) == pytest.approx(0.5, abs=1e-3)
    assert not torch.equal(dict(a.named_parameters())["net.head.weight"], dict(b.named_parameters())["net.head.weight"])
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    assert not all(torch.equal(ma[k], mc[k]) for k in ma)


# --- 5. a structured, quantized prune run end to end -------------------------------------------------


def test_structured_quantized_prune_run_end_to_end(tiny, tmp_path: Path) -> None:
    rounds = 3
    cfg = tiny(
        "pruning.granularity=structured",
        "pruning.scope=local",
        "pruning.quantize=true",
        f"pruning.iterations={rounds}",
        "pruning.amount=0.5",
        "model.hidden_size=16",  # 8 units survive per direction: below ~4, torch.save's overhead outweighs int8's gain
    )
    run_id = runner.run(cfg, "prune").run_id
    uri = cfg.tracking.uri
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["pruning.kept_round"] == str(rounds) and "pruning.stopped_at" not in run.data.tags

    units = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "hidden_units"))
    assert [step for step, _ in units] == list(range(rounds + 1))
    assert units[0][1] == 2 * cfg.model.hidden_size  # dense: both directions
    assert all(a >= b for (_, a), (_, b) in pairwise(units))
    net = load_model(run_id, uri).eval()
    current = masks.read(net)
    assert hidden_units(net, current) == units[-1][1] < units[0][1]

    small = load_model(run_id, uri, "compacted_model").eval()
    assert not masks.read(small)
    assert sum(p.numel() for p in small.parameters()) == run.data.metrics["compacted_params"]
    assert run.data.metrics["compacted_params"] < sum(p.numel() for p in net.parameters())
    data, _, _ = runner.build(cfg, rounds)
    with torch.no_grad():
        for x, lengths, _ in data.test_dataloader():
            assert torch.allclose(small(x, lengths), net(x, lengths), atol=1e-5)

    listed = {a.path for a in client.list_artifacts(run_id, "sparsity")}
    assert {"sparsity/gates.csv", "sparsity/gates.json", "sparsity/gates.png"} <= listed
    folder = Path(client.download_artifacts(run_id, "sparsity", str(tmp_path)))
    table = pd.read_csv(folder / "gates.csv")
    keys = ("layer", "direction", "matrix", "gate", "pruned", "total")
    as_json = [tuple(str(r[k]) for k in keys) for r in json.loads((folder / "gates.json").read_text())]
    assert as_json == [tuple(str(v) for v in row) for row in table[list(keys)].itertuples(index=False)]
    assert (folder / "gates.png").read_bytes()[:8] == PNG_SIGNATURE
    zeros = sum(int((~m).sum()) for m in current.values())
    assert int(table["pruned"].sum()) == zeros
    assert table["pruned"].sum() / table["total"].sum() == pytest.approx(run.data.metrics["sparsity"], abs=1e-9)

    metrics = run.data.metrics
    assert metrics["quantized_bytes"] < metrics["float_bytes"] == metrics["compacted_bytes"]
    assert 0.0 <= metrics["quantized_val_accuracy"] <= 1.0 and 0.0 <= metrics["quantized_test_accuracy"] <= 1.0
