"""DiffusionTrainer in two processes (``torch.distributed``, gloo on the CPU) against one process with the same
global batch: with the same noise and time steps the weights after training are the same, feature-alignment
projection and gradient clipping included, and a NaN in one process's half of a batch skips that step in both."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler
from torch import nn

from medsyn_monai.engines import DiffusionPrepareBatch, DiffusionTrainer
from medsyn_monai.losses import FeatureAlignmentLoss
from medsyn_monai.networks.nets import FeatureExtractor
from medsyn_monai.utils import get_world_size, is_distributed
from tests._helpers import run_processes, tiny_unet

GLOBAL_BATCH, BATCHES, WORLD = 8, 3, 2


class FixedNoise(DiffusionPrepareBatch):
    """Noise and time steps from the batch itself (``"noise"``, ``"t"``), so that a batch split over processes is
    noised exactly as the whole batch in one process."""

    def __call__(self, batchdata, device=None, non_blocking=False, **kwargs):
        self._noise, self._t = batchdata["noise"], batchdata["t"]
        return super().__call__(batchdata, device, non_blocking, **kwargs)

    def get_noise(self, images):
        return self._noise.to(images.device)

    def get_timesteps(self, images):
        return self._t.to(images.device)


class TinyExpert(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.in_channels, self.image_size, self.feature_dim = 1, (16, 16), 6
        self.conv = nn.Conv2d(1, 6, 3, padding=1)

    def features(self, x):
        return self.conv(x).mean(dim=(2, 3))


def _batches(rank: int, world: int) -> list[dict[str, torch.Tensor]]:
    """This process's share of every global batch (all of it for ``world=1``); batch 2 holds a NaN image in the
    second half (the last process's share)."""
    g = torch.Generator().manual_seed(7)
    share = GLOBAL_BATCH // world
    out = []
    for b in range(BATCHES):
        full = {
            "image": torch.rand(GLOBAL_BATCH, 1, 16, 16, generator=g) * 2 - 1,
            "label": torch.arange(GLOBAL_BATCH) % 2,
            "noise": torch.randn(GLOBAL_BATCH, 1, 16, 16, generator=g),
            "t": torch.randint(0, 100, (GLOBAL_BATCH,), generator=g),
        }
        if b == 1:
            full["image"][-1, 0, 3, 3] = float("nan")
        out.append({k: v[rank * share : (rank + 1) * share] for k, v in full.items()})
    return out


def _train(rank: int, world: int) -> dict[str, torch.Tensor]:
    net = tiny_unet(num_classes=2)
    torch.manual_seed(11)
    align = FeatureAlignmentLoss(expert_dim=6, diffusion_dim=16)
    params = list(net.parameters()) + list(align.parameters())
    trainer = DiffusionTrainer("cpu", 1, _batches(rank, world), net, torch.optim.SGD(params, lr=0.05),
                               DDPMScheduler(100), label_key="label", feature_alignment=align,
                               alignment_expert=FeatureExtractor(TinyExpert()), max_grad_norm=0.5,
                               max_nonfinite_batches=1)  # fmt: skip
    trainer.prepare_batch = FixedNoise(DDPMScheduler(100), label_key="label")
    assert trainer.distributed == (world > 1) and trainer.raw_network is net
    trainer.run()
    assert trainer.state.nonfinite_batches == 1 and trainer.state.iteration == BATCHES
    state = {f"net.{k}": v.detach().clone() for k, v in net.state_dict().items()}
    state.update({f"align.{k}": v.detach().clone() for k, v in align.state_dict().items()})
    return state


def _worker(rank: int, out: str) -> None:
    assert is_distributed() and get_world_size() == WORLD
    torch.save(_train(rank, WORLD), Path(out) / f"rank{rank}.pt")


def test_two_processes_match_one(tmp_path):
    run_processes(_worker, str(tmp_path), world=WORLD)
    single = _train(0, 1)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for name, value in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # the processes stay in step exactly
        assert torch.allclose(ranks[0][name], value, atol=1e-5, rtol=1e-4), name  # and match one process
    trained = tiny_unet(num_classes=2).state_dict()
    assert any(not torch.allclose(trained[k], single[f"net.{k}"]) for k in trained)  # the weights did change


def test_distributed_true_needs_a_process_group():
    net = tiny_unet()
    with pytest.raises(ValueError, match="torchrun"):
        DiffusionTrainer("cpu", 1, [], net, torch.optim.SGD(net.parameters(), 0.1), DDPMScheduler(10),
                         distributed=True)  # fmt: skip
