"""SamplingScheduler: MONAI's sampling schedulers satisfy the runtime-checkable protocol; other objects do not."""

from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, PNDMScheduler, RFlowScheduler, Scheduler

from medsyn_monai.networks.schedulers import SAMPLING_SCHEDULERS, SamplingScheduler, sampling_scheduler


def _rflow() -> RFlowScheduler:
    """RFlowScheduler has no ``timesteps`` until ``set_timesteps`` is called (unlike DDPM, DDIM and PNDM)."""
    scheduler = RFlowScheduler(num_train_timesteps=100)
    scheduler.set_timesteps(4, device="cpu")
    return scheduler


@pytest.mark.parametrize(
    "build",
    [
        lambda: DDPMScheduler(num_train_timesteps=100),
        lambda: DDIMScheduler(num_train_timesteps=100),
        lambda: PNDMScheduler(num_train_timesteps=100, skip_prk_steps=True),
        _rflow,
        *[lambda kind=kind: sampling_scheduler(kind, num_train_timesteps=100) for kind in SAMPLING_SCHEDULERS],
    ],
    ids=["ddpm", "ddim", "pndm", "rflow", *[f"factory_{k}" for k in SAMPLING_SCHEDULERS]],
)
def test_monai_schedulers_fit_and_sample(build):
    scheduler = build()
    assert isinstance(scheduler, SamplingScheduler) and scheduler.num_train_timesteps == 100
    # what the inferers do with it: choose the steps, then step from noisy to clean
    scheduler.set_timesteps(5, device="cpu")
    timesteps = scheduler.timesteps
    assert isinstance(timesteps, torch.Tensor) and timesteps[0] > timesteps[-1] and len(timesteps) >= 4
    sample = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    out = scheduler.step(torch.ones_like(sample), timesteps[0], sample)
    assert isinstance(out, tuple) and len(out) == 2
    assert out[0].shape == sample.shape and torch.isfinite(out[0]).all() and not torch.equal(out[0], sample)


class NoStep:
    """Everything but ``step``."""

    num_train_timesteps = 10

    def __init__(self) -> None:
        self.timesteps = torch.arange(10)

    def set_timesteps(self, num_inference_steps: int, device=None) -> None:
        self.timesteps = torch.arange(num_inference_steps)


def _step(model_output, timestep, sample):
    return sample, model_output


def test_objects_missing_a_member_do_not_fit():
    assert not isinstance(Scheduler(num_train_timesteps=10), SamplingScheduler)  # MONAI's base: no step
    assert not isinstance(torch.nn.Identity(), SamplingScheduler)
    scheduler = NoStep()
    assert not isinstance(scheduler, SamplingScheduler)
    scheduler.step = _step
    assert isinstance(scheduler, SamplingScheduler)
    del scheduler.timesteps  # e.g. RFlowScheduler before set_timesteps
    assert not isinstance(scheduler, SamplingScheduler)
    scheduler.set_timesteps(3)
    assert isinstance(scheduler, SamplingScheduler)
