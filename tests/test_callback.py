"""The pruning callback on a real (tiny) LSTM: schedule, shrinking masks, persistent zeros, reloads, resume."""

from __future__ import annotations

import copy
from itertools import pairwise
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from pipeline import runner
from pipeline.models import RNNModule
from pipeline.pruning import masks
from pipeline.pruning.groups import prunable
from pipeline.pruning.schedules import SCHEDULES


class MaskProbe(pl.Callback):
    """Records, after every training epoch, the masks and whether pruned weights are still zero."""

    def __init__(self) -> None:
        self.masks: list[dict[str, torch.Tensor]] = []
        self.zeros_kept: list[bool] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        current = {k: m.clone() for k, m in masks.read(pl_module).items()}
        params = dict(pl_module.named_parameters())
        self.masks.append(current)
        self.zeros_kept.append(all(bool((params[k][~m] == 0).all()) for k, m in current.items()))


def fit(cfg, rounds: int, callbacks=(), ckpt_path=None, max_epochs=None):
    data, module, callback = runner.build(cfg, rounds)
    trainer = pl.Trainer(
        max_epochs=max_epochs or callback.total_epochs,
        max_steps=callback.total_steps,
        logger=False,
        accelerator="cpu",
        callbacks=list(callbacks),
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return data, module, callback


@pytest.mark.parametrize(
    ("schedule", "scope"), [("iterative", "global"), ("iterative", "local"), ("oneshot", "global")]
)
def test_density_follows_schedule_masks_shrink_zeros_persist(tiny, schedule: str, scope: str) -> None:
    cfg = tiny(
        f"pruning.schedule={schedule}",
        f"pruning.scope={scope}",
        "pruning.amount=0.9",
        "pruning.retrain_epochs=2",
        "model.cell=gru",
        "model.num_layers=2",
    )
    probe = MaskProbe()
    _, module, callback = fit(cfg, rounds=3, callbacks=[probe])
    total = sum(m.numel() for m in masks.read(module).values())
    expected = [SCHEDULES[schedule](r, 3, 0.9) for r in range(4)]
    assert [h["round"] for h in callback.history] == [0, 1, 2, 3]
    for h, target in zip(callback.history, expected, strict=True):
        assert h["sparsity"] == pytest.approx(target, abs=len(masks.read(module)) / total)
    for before, after in pairwise(probe.masks):
        assert all(bool((after[k] <= before[k]).all()) for k in before)  # masks only shrink
    assert all(probe.zeros_kept)  # pruned weights stay zero through every retraining epoch
    assert masks.sparsity(masks.read(module)) == pytest.approx(callback.history[-1]["sparsity"])


def test_pruned_model_survives_deepcopy_state_dict_reload_and_jit_script(tiny) -> None:
    data, module, _ = fit(tiny("pruning.amount=0.8", "model.num_layers=2"), rounds=2)
    x, lengths, _ = next(iter(data.test_dataloader()))
    module.eval()
    expected = module(x, lengths)
    pruned = {k: m.clone() for k, m in masks.read(module).items()}

    clone = copy.deepcopy(module)
    assert torch.equal(clone(x, lengths), expected)
    assert all(torch.equal(masks.read(clone)[k], m) for k, m in pruned.items())

    fresh = RNNModule(**module.hparams).eval()
    masks.attach(fresh, prunable(fresh))
    fresh.load_state_dict(module.state_dict())  # strict: masks travel as ordinary buffers
    assert torch.equal(fresh(x, lengths), expected)
    params = dict(fresh.named_parameters())
    assert all(bool((params[k][~m] == 0).all()) for k, m in masks.read(fresh).items())
    assert masks.sparsity(masks.read(fresh)) == masks.sparsity(pruned)

    scripted = torch.jit.script(module.net)
    assert torch.allclose(scripted(x, lengths), expected, atol=1e-6)
    scripted_params = dict(scripted.named_parameters())
    assert all(bool((scripted_params[k.removeprefix("net.")][~m] == 0).all()) for k, m in pruned.items())


def test_resume_from_a_mid_way_checkpoint_gives_the_same_masks(tiny, tmp_path: Path) -> None:
    cfg = tiny("pruning.retrain_epochs=2", "pruning.amount=0.9", "model.dropout=0.2", "model.num_layers=2")
    every_epoch = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    _, uninterrupted, first = fit(cfg, rounds=3, callbacks=[every_epoch])
    middle = tmp_path / "ckpt" / "epoch=4.ckpt"  # epochs 0-1 dense, round 1 trains 2-3, round 2 trains 4-5
    assert middle.exists()
    _, resumed, second = fit(cfg, rounds=3, ckpt_path=str(middle))
    assert second.pruned == 3 and second.history == first.history
    for name, mask in masks.read(uninterrupted).items():
        assert torch.equal(masks.read(resumed)[name], mask), name
    for (name, a), b in zip(uninterrupted.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name


def test_agp_per_step_prunes_mid_epoch_every_retrain_steps(tiny) -> None:
    cfg = tiny("pruning.schedule=agp", "pruning.iterations=4", "pruning.retrain_steps=3", "pruning.amount=0.8")
    probe = MaskProbe()
    data, module, callback = fit(cfg, rounds=4, callbacks=[probe])
    steps_per_epoch = len(data.train_dataloader())
    dense_steps = cfg.train.epochs * steps_per_epoch
    assert [h["step"] for h in callback.history] == [dense_steps + 3 * r for r in range(5)]
    assert any(h["step"] % steps_per_epoch for h in callback.history)  # some rounds end mid-epoch
    total = sum(m.numel() for m in masks.read(module).values())
    for h in callback.history:
        target = SCHEDULES["agp"](h["round"], 4, 0.8)
        assert h["sparsity"] == pytest.approx(target, abs=len(masks.read(module)) / total)
    assert all(probe.zeros_kept)
