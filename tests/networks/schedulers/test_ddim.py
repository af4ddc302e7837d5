"""DDIMScheduler: each step lands on the next of its own time steps, so step counts that do not divide T sample as
well as divisors (MONAI's class does not); n = T and divisors keep MONAI's steps; spacings; errors."""

from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler as MonaiDDIMScheduler

from medsyn_monai.networks.schedulers import DDIMScheduler
from tests.networks.schedulers._gaussian import oracle_output, solve


def test_full_steps_equal_monai():
    ours, _ = solve(DDIMScheduler(1000, clip_sample=False), 1000)
    monai, _ = solve(MonaiDDIMScheduler(1000, clip_sample=False), 1000)
    torch.testing.assert_close(ours, monai, atol=1e-12, rtol=0)


def test_steps_land_on_the_next_time_step():
    """Stepping a clean-image oracle's prediction: the result must carry exactly the noise level of the next step."""
    scheduler = DDIMScheduler(1000, prediction_type="sample", clip_sample=False)
    monai = MonaiDDIMScheduler(1000, prediction_type="sample", clip_sample=False)
    for s in (scheduler, monai):
        s.set_timesteps(25)  # 25 does not divide 1000 into the rounded linspace steps
    x0, eps = torch.full((1,), 0.4, dtype=torch.float64), torch.full((1,), 1.0, dtype=torch.float64)
    abar = scheduler.alphas_cumprod.double()
    t, t_next = int(scheduler.timesteps[1]), int(scheduler.timesteps[2])
    x_t = abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * eps
    expected = abar[t_next].sqrt() * x0 + (1 - abar[t_next]).sqrt() * eps
    ours, _ = scheduler.step(x0, t, x_t)
    theirs, _ = monai.step(x0, t, x_t)
    torch.testing.assert_close(ours, expected, atol=1e-7, rtol=0)  # float32 alpha_bar
    assert float((theirs - expected).abs()) > 1e-5  # MONAI lands on t - 40, not on t_next = t - 42


def test_eta_adds_reproducible_noise():
    scheduler = DDIMScheduler(100)
    scheduler.set_timesteps(10)
    x = torch.zeros(4)
    t = scheduler.timesteps[0]
    a, _ = scheduler.step(oracle_output(scheduler.alphas_cumprod, x, int(t), "epsilon"), t, x, eta=1.0,
                          generator=torch.Generator().manual_seed(1))  # fmt: skip
    b, _ = scheduler.step(oracle_output(scheduler.alphas_cumprod, x, int(t), "epsilon"), t, x, eta=1.0,
                          generator=torch.Generator().manual_seed(1))  # fmt: skip
    c, _ = scheduler.step(oracle_output(scheduler.alphas_cumprod, x, int(t), "epsilon"), t, x)
    torch.testing.assert_close(a, b) and not torch.allclose(a, c)


def test_spacing_and_errors():
    scheduler = DDIMScheduler(1000, timestep_spacing="quadratic")
    scheduler.set_timesteps(5)
    assert scheduler.timesteps.tolist() == [999, 562, 250, 62, 0]
    with pytest.raises(ValueError, match="timestep 7 is not one of the 5 sampling steps"):
        scheduler.step(torch.zeros(1), 7, torch.zeros(1))
    with pytest.raises(ValueError, match="unknown timestep spacing"):
        DDIMScheduler(100, timestep_spacing="leading")
