"""sampling_timesteps: every spacing gives n distinct integer steps from T - 1 to 0 for any n <= T (also n not
dividing T), the spacings differ where they should, and bad counts or names fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from medsyn_monai.networks.schedulers import sampling_timesteps
from medsyn_monai.utils.enums import TimestepSpacing

ABAR = DDPMScheduler(num_train_timesteps=1000).alphas_cumprod


@pytest.mark.parametrize("spacing", list(TimestepSpacing))
@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 25, 333, 999, 1000])
def test_distinct_decreasing_steps_from_t_minus_one_to_zero(spacing, n):
    t = sampling_timesteps(ABAR, n, spacing)
    assert t.dtype == torch.long and len(t) == n and int(t[0]) == 999
    assert n == 1 or int(t[-1]) == 0
    assert bool((t[:-1] > t[1:]).all())


def test_spacings_follow_their_definitions():
    n = 11
    uniform = sampling_timesteps(ABAR, n, "uniform").numpy()
    assert np.abs(np.diff(uniform) + 99.9).max() <= 1  # evenly in time
    quadratic = sampling_timesteps(ABAR, n, "quadratic").numpy()
    np.testing.assert_allclose(np.sqrt(quadratic / 999), np.linspace(1, 0, n), atol=0.01)
    lam = 0.5 * (np.log(ABAR.double().numpy()) - np.log1p(-ABAR.double().numpy()))
    logsnr = sampling_timesteps(ABAR, n, "LogSNR").numpy()
    steps = np.diff(lam[logsnr])
    assert steps.max() / steps.min() < 1.6  # evenly in lambda, up to rounding where lambda changes fast
    karras = sampling_timesteps(ABAR, n, TimestepSpacing.KARRAS).numpy()
    sigma = np.sqrt((1 - ABAR.double().numpy()) / ABAR.double().numpy())
    np.testing.assert_allclose(np.diff(sigma[karras] ** (1 / 7)), np.diff(sigma[karras] ** (1 / 7)).mean(), rtol=0.3)
    # the logSNR and Karras spacings put more steps near the clean end than uniform time does
    assert (logsnr < 100).sum() > (uniform < 100).sum() and (karras < 100).sum() > (uniform < 100).sum()


@pytest.mark.parametrize("n", [0, -1, 1001])
def test_bad_counts(n):
    with pytest.raises(ValueError, match=f"num_inference_steps={n} must be between 1 and the 1000 steps"):
        sampling_timesteps(ABAR, n)


def test_unknown_spacing():
    with pytest.raises(ValueError, match="unknown timestep spacing 'trailing'; choose one of"):
        sampling_timesteps(ABAR, 10, "trailing")
