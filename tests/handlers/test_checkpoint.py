"""AtomicCheckpoint: atomic files, resume after a stop or a crash, clear mismatch errors, epoch snapshots."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Events
from ignite.handlers import EMAHandler
from monai.networks.schedulers import DDPMScheduler

from medsyn_monai.engines import DiffusionTrainer
from medsyn_monai.handlers import AtomicCheckpoint
from medsyn_monai.networks.nets import LightweightDiffusionUNet
from tests._helpers import noise_batches, tiny_unet


def _make_trainer(tmp_path, max_epochs, fail_at=None):
    net = tiny_unet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ema = EMAHandler(net, momentum=0.1)
    ckpt = AtomicCheckpoint(tmp_path / "models", {"network": net, "ema": ema.ema_model, "optimizer": opt})
    trainer = DiffusionTrainer(
        "cpu", max_epochs, noise_batches(3), net, opt, DDPMScheduler(100), train_handlers=[ema, ckpt]
    )
    if fail_at is not None:

        def fail(engine):
            if engine.state.iteration == fail_at:
                raise RuntimeError("simulated crash")

        trainer.add_event_handler(Events.ITERATION_COMPLETED, fail)
    return trainer, net, ema, ckpt


def test_checkpoint_atomic_files_and_resume(tmp_path):
    trainer, net, ema, _ = _make_trainer(tmp_path, 2)
    trainer.run()
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint.pt", "model.pt"]  # no temporary files left
    state = torch.load(models / "checkpoint.pt", weights_only=False)
    assert set(state) == {"network", "ema", "optimizer", "trainer"}
    assert state["trainer"]["iteration"] == 6  # 2 epochs of 3 batches
    model_pt = torch.load(models / "model.pt")
    assert all(torch.equal(model_pt[k], v) for k, v in ema.ema_model.state_dict().items())
    assert not all(torch.equal(model_pt[k], v) for k, v in net.state_dict().items())  # EMA != raw weights

    # extend the run: a new process resumes at epoch 2 and trains epochs 3-4 only
    trainer2, net2, _, ckpt2 = _make_trainer(tmp_path, 4)
    epochs = []
    trainer2.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    trainer2.run()
    assert ckpt2.resumed_from_epoch == 2
    assert epochs == [3, 4]
    assert trainer2.state.iteration == 12


def test_resume_after_crash(tmp_path):
    trainer, _, _, _ = _make_trainer(tmp_path, 3, fail_at=5)  # crash in epoch 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.run()
    state = torch.load(tmp_path / "models" / "checkpoint.pt", weights_only=False)
    assert state["trainer"]["iteration"] == 5  # saved on the exception
    trainer2, _, _, ckpt2 = _make_trainer(tmp_path, 3)
    trainer2.run()
    assert ckpt2.resumed_from_epoch == 1  # iteration 5 = inside epoch 2: epochs 1 done, epoch 2 resumes mid-way
    assert trainer2.state.epoch == 3 and trainer2.state.iteration == 9


def test_resume_mismatch_is_clear(tmp_path):
    trainer, _, _, _ = _make_trainer(tmp_path, 1)
    trainer.run()
    net = LightweightDiffusionUNet(channels=(8, 32), norm_num_groups=4)
    opt = torch.optim.Adam(net.parameters())
    ckpt = AtomicCheckpoint(tmp_path / "models", {"network": net, "ema": net, "optimizer": opt})
    trainer2 = DiffusionTrainer("cpu", 2, noise_batches(3), net, opt, DDPMScheduler(100), train_handlers=[ckpt])
    with pytest.raises(RuntimeError, match="does not match the current configuration"):
        trainer2.run()


def test_no_checkpoint_when_failing_before_training(tmp_path):
    net = LightweightDiffusionUNet(in_channels=3, out_channels=3, channels=(8, 16), norm_num_groups=4)
    opt = torch.optim.Adam(net.parameters())
    ckpt = AtomicCheckpoint(tmp_path / "models", {"network": net, "optimizer": opt}, model_key="network")
    trainer = DiffusionTrainer("cpu", 1, noise_batches(1), net, opt, DDPMScheduler(10), train_handlers=[ckpt])
    with pytest.raises(ValueError, match="channel"):
        trainer.run()
    assert not (tmp_path / "models" / "checkpoint.pt").exists()


def test_checkpoint_snapshots_keep_weights_of_given_epochs(tmp_path):
    net = tiny_unet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    ckpt = AtomicCheckpoint(tmp_path / "m", {"network": net, "optimizer": opt}, model_key="network",
                            snapshot_epochs=[1, 3])  # fmt: skip
    weights = {}
    trainer = DiffusionTrainer("cpu", 3, noise_batches(2), net, opt, DDPMScheduler(10), train_handlers=[ckpt])
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: weights.update({e.state.epoch: net.out_conv.weight.detach().clone()})
    )
    trainer.run()
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == ["checkpoint.pt", "model.pt", "model_epoch_0001.pt", "model_epoch_0003.pt"]
    first = torch.load(tmp_path / "m" / "model_epoch_0001.pt", weights_only=True)
    assert torch.equal(first["out_conv.weight"], weights[1])
    assert not torch.equal(weights[1], weights[3])  # training went on after the first snapshot
    assert ckpt.snapshot_path(3) == tmp_path / "m" / "model_epoch_0003.pt"
    with pytest.raises(ValueError, match="positive"):
        AtomicCheckpoint(tmp_path, {"network": net}, model_key="network", snapshot_epochs=[0])
    with pytest.raises(ValueError, match="model_key"):
        AtomicCheckpoint(tmp_path, {"network": net}, model_key=None, snapshot_epochs=[2])
