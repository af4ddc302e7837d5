"""sampling_scheduler: the scheduler class of each scheduler_type, the training schedule and prediction type passed
on, sampling with an oracle network, and the error for an unknown type."""

from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from medsyn_monai.networks.schedulers import (
    SAMPLING_SCHEDULERS,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    UniPCMultistepScheduler,
    sampling_scheduler,
)
from medsyn_monai.utils.enums import SchedulerType


def test_every_scheduler_type_has_a_class():
    assert sorted(SAMPLING_SCHEDULERS) == sorted(t.value for t in SchedulerType)
    for kind, cls, order in [
        ("ddpm", DDPMScheduler, None),
        (SchedulerType.DDIM, DDIMScheduler, None),
        ("DDIM", DDIMScheduler, None),
        ("dpmpp_2m", DPMSolverMultistepScheduler, 2),
        ("dpmpp_3m", DPMSolverMultistepScheduler, 3),
        ("unipc", UniPCMultistepScheduler, 2),
    ]:
        scheduler = sampling_scheduler(kind, num_train_timesteps=50)
        assert type(scheduler) is cls and scheduler.num_train_timesteps == 50
        assert scheduler.prediction_type == "epsilon" and getattr(scheduler, "solver_order", None) == order


def test_options_reach_the_scheduler():
    scheduler = sampling_scheduler("unipc", 100, timestep_spacing="karras", clip_sample=False)
    assert scheduler.timestep_spacing == "karras" and scheduler.clip_sample is False
    with pytest.raises(TypeError):
        sampling_scheduler("ddpm", 100, timestep_spacing="karras")  # DDPM steps through every training step


@pytest.mark.parametrize("schedule", ["linear_beta", "scaled_linear_beta", "cosine"])
def test_the_training_schedule_is_passed_on(schedule):
    for kind in SAMPLING_SCHEDULERS:
        scheduler = sampling_scheduler(kind, num_train_timesteps=40, schedule=schedule)
        torch.testing.assert_close(scheduler.betas, DDPMScheduler(num_train_timesteps=40, schedule=schedule).betas)
    other = "cosine" if schedule != "cosine" else "linear_beta"
    assert not torch.allclose(scheduler.betas, sampling_scheduler("ddim", 40, schedule=other).betas)


@pytest.mark.parametrize("kind, steps", [("ddpm", 20), ("ddim", 4), ("dpmpp_2m", 4), ("dpmpp_3m", 5), ("unipc", 3)])
def test_oracle_sample_prediction_reaches_the_target(kind, steps):
    """A network that predicts the clean image (prediction_type "sample") exactly brings noise to that image."""
    target = torch.linspace(-0.9, 0.9, 16).view(1, 1, 4, 4)
    scheduler = sampling_scheduler(kind, num_train_timesteps=20, prediction_type="sample")
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps.tolist()
    assert len(timesteps) == steps and timesteps == sorted(set(timesteps), reverse=True) and timesteps[-1] == 0
    x = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for t in scheduler.timesteps:
        x, predicted_clean = scheduler.step(target, t, x, generator=torch.Generator().manual_seed(int(t)))
        torch.testing.assert_close(predicted_clean, target)
    torch.testing.assert_close(x, target, atol=1e-3, rtol=0)  # float32 rounding of 1 - alpha_bar at t = 0
    # the same network read as a noise prediction ("epsilon", the default) does not give the image back
    eps = sampling_scheduler(kind, num_train_timesteps=20)
    eps.set_timesteps(steps)
    _, predicted_clean = eps.step(target, eps.timesteps[0], torch.zeros_like(target))
    assert not torch.allclose(predicted_clean, target, atol=1e-2)


@pytest.mark.parametrize("kind", ["pndm", "rflow", "", None])
def test_unknown_scheduler_type(kind):
    with pytest.raises(ValueError) as info:
        sampling_scheduler(kind)
    msg = str(info.value)
    assert msg.startswith(f"unknown scheduler_type {kind!r}; choose one of") and "ddpm" in msg and "ddim" in msg
