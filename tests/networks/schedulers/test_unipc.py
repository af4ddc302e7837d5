"""UniPCMultistepScheduler on the Gaussian toy with the exact network output: convergence to the exact ODE
solution and the data distribution, an order above DDIM (slope test), the corrector's gain, prediction types, full
steps; reuse and errors."""

from __future__ import annotations

import math

import pytest
import torch

from medsyn_monai.networks.schedulers import DDIMScheduler, UniPCMultistepScheduler
from tests.networks.schedulers._gaussian import MU, S, ode_error, solve


def _unipc(order=2, **kw):
    return UniPCMultistepScheduler(1000, solver_order=order, clip_sample=False, **kw)


def test_error_falls_faster_than_ddim_and_the_corrector_helps():
    steps = [20, 40, 80]
    ddim = [ode_error(DDIMScheduler(1000, timestep_spacing="logsnr", clip_sample=False), n) for n in steps]
    unipc = [ode_error(_unipc(2, timestep_spacing="logsnr"), n) for n in steps]
    predictor = [ode_error(_unipc(2, timestep_spacing="logsnr", use_corrector=False), n) for n in steps]
    slope = math.log(unipc[-1] / unipc[0]) / math.log(4)
    assert slope < -2.5  # UniP-2 + UniC: third order
    assert unipc[0] < ddim[0] / 5
    assert all(u < p for u, p in zip(unipc, predictor, strict=True))
    # order 1 without the corrector is DDIM
    assert ode_error(_unipc(1, timestep_spacing="logsnr", use_corrector=False), 20) == pytest.approx(ddim[0], rel=1e-6)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_samples_converge_to_the_data_distribution(order):
    errors, gaps = [], []
    for n in (10, 40, 160):
        x, exact = solve(_unipc(order, timestep_spacing="logsnr"), n)
        errors.append(float((x - exact).abs().mean()))
        gaps.append(abs(float(x.mean()) - MU) + abs(float(x.std()) - S))
    floor = abs(float(exact.mean()) - MU) + abs(float(exact.std()) - S)  # the exact ODE from these start points
    assert errors[2] < errors[1] < errors[0] and errors[2] < 2e-3
    assert gaps[2] < floor + 2e-3


def test_prediction_types_give_the_same_trajectory():
    x_eps, _ = solve(_unipc(), 12, "epsilon")
    for prediction_type in ["v_prediction", "sample"]:
        x, _ = solve(_unipc(prediction_type=prediction_type), 12, prediction_type)
        torch.testing.assert_close(x, x_eps, atol=1e-9, rtol=0)


def test_full_steps_match_ddim():
    ddim, _ = solve(DDIMScheduler(1000, clip_sample=False), 1000)
    x, exact = solve(_unipc(), 1000)
    assert float((x - ddim).abs().max()) < 1e-2 and float((x - exact).abs().mean()) < 2e-4


def test_reuse_and_errors():
    scheduler = _unipc()
    a, _ = solve(scheduler, 13)
    b, _ = solve(scheduler, 13)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    with pytest.raises(ValueError, match="must follow scheduler.timesteps in order"):
        scheduler.step(torch.zeros(2), scheduler.timesteps[5], torch.zeros(2))
    with pytest.raises(ValueError, match="orders 1 to 3"):
        _unipc(0)
