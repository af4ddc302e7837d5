"""DifferentialPrivacy: DP-SGD through Opacus on the DiffusionTrainer: the budget spent as calibrated, the privacy
record in the checkpoint and model_info.json, no resume past the budget, clear errors for what DP-SGD cannot train."""

from __future__ import annotations

import json

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler
from torch.utils.data import DataLoader

from medsyn_monai.engines import DiffusionTrainer
from medsyn_monai.handlers import AtomicCheckpoint, DifferentialPrivacy, PrivacyBudgetError
from medsyn_monai.utils import load_torch_file
from tests._helpers import tiny_unet


def _loader(n=24, batch_size=4):
    g = torch.Generator().manual_seed(1)
    images = [{"image": torch.rand(1, 8, 8, generator=g) * 2 - 1} for _ in range(n)]
    return DataLoader(images, batch_size=batch_size)


def _run(folder, max_epochs, dp, **kwargs):
    net = tiny_unet()
    opt = kwargs.pop("optimizer", None) or torch.optim.AdamW(net.parameters(), lr=1e-3)
    ckpt = AtomicCheckpoint(folder / "models", {"network": net, "optimizer": opt, "privacy": dp}, model_key="network",
                            model_info={"bundle": "test"}, live_info={"differential_privacy": dp.summary})  # fmt: skip
    trainer = DiffusionTrainer("cpu", max_epochs, _loader(), net, opt, DDPMScheduler(100), train_handlers=[dp, ckpt],
                               **kwargs)  # fmt: skip
    return trainer, net


def test_budget_spent_as_calibrated_and_recorded(tmp_path):
    dp = DifferentialPrivacy(epsilon=4.0, max_grad_norm=0.5)
    trainer, net = _run(tmp_path, 3, dp)
    before = [p.detach().clone() for p in net.parameters()]
    trainer.run()
    assert type(trainer.network).__name__ == "GradSampleModule" and type(trainer.optimizer).__name__ == "DPOptimizer"
    spent = dp.spent()
    assert 3.6 < spent <= 4.0 + 1e-6  # the noise is calibrated to spend the budget over max_epochs
    assert dp.noise_multiplier is not None and dp.noise_multiplier > 0.5 and dp.delta == pytest.approx(1 / 240)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert all(torch.isfinite(p).all() for p in net.parameters())
    state = load_torch_file(tmp_path / "models" / "checkpoint.pt")
    assert state["privacy"]["epsilon"] == 4.0 and len(state["privacy"]["history"]) == 1
    assert state["privacy"]["history"][0][2] == 18  # 3 epochs x 6 steps at sample rate 1/6
    info = json.loads((tmp_path / "models" / "model_info.json").read_text())["differential_privacy"]
    assert info["epsilon_spent"] == pytest.approx(spent) and info["accountant"] == "rdp"
    assert info["num_training_images"] == 24 and info["max_grad_norm"] == 0.5
    assert list(state["network"]) == list(net.state_dict())  # plain weights, no Opacus wrapper prefix


def test_resume_never_spends_more_than_the_budget(tmp_path):
    trainer, _ = _run(tmp_path, 2, DifferentialPrivacy(epsilon=4.0))
    trainer.run()
    more, _ = _run(tmp_path, 3, DifferentialPrivacy(epsilon=4.0))
    with pytest.raises(PrivacyBudgetError, match="calibrated for 2 epochs; training to max_epochs=3 would spend more"):
        more.run()
    other, _ = _run(tmp_path, 2, DifferentialPrivacy(epsilon=8.0))
    with pytest.raises(PrivacyBudgetError, match="trained with differential privacy epsilon=4.0"):
        other.run()
    same_dp = DifferentialPrivacy(epsilon=4.0)
    same, _ = _run(tmp_path, 2, same_dp)
    same.run()  # already done: nothing to train, the accountant's record restored from the checkpoint
    assert 3.5 < same_dp.spent() <= 4.0 + 1e-6


def test_what_dp_sgd_cannot_train(tmp_path):
    with pytest.raises(ValueError, match="epsilon .* must be a positive number"):
        DifferentialPrivacy(epsilon=0)
    with pytest.raises(ValueError, match="delta .* must be in"):
        DifferentialPrivacy(epsilon=1, delta=2)
    with pytest.raises(ValueError, match="accountant must be"):
        DifferentialPrivacy(epsilon=1, accountant="moments")
    net = tiny_unet()
    projector = torch.nn.Linear(4, 4)
    opt = torch.optim.AdamW(list(net.parameters()) + list(projector.parameters()))
    trainer, _ = _run(tmp_path / "a", 1, DifferentialPrivacy(epsilon=1.0), optimizer=opt)
    with pytest.raises(ValueError, match="trains the network's own parameters only"):
        trainer.run()
    bn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    bn_trainer = DiffusionTrainer("cpu", 1, _loader(), bn, torch.optim.SGD(bn.parameters(), lr=0.1), DDPMScheduler(10),
                                  train_handlers=[DifferentialPrivacy(epsilon=1.0)])  # fmt: skip
    with pytest.raises(ValueError, match="cannot be trained with DP-SGD"):
        bn_trainer.run()
