"""DPMSolverMultistepScheduler on the Gaussian toy with the exact network output: samples converge to the exact ODE
solution and to the data distribution as steps grow, second and third order beat DDIM's first order (slope test),
all three prediction types give one trajectory, full steps match DDIM; order, state and errors."""

from __future__ import annotations

import math

import pytest
import torch

from medsyn_monai.networks.schedulers import DDIMScheduler, DPMSolverMultistepScheduler
from tests.networks.schedulers._gaussian import MU, S, ode_error, solve


def _dpm(order=2, **kw):
    return DPMSolverMultistepScheduler(1000, solver_order=order, clip_sample=False, **kw)


def _gap(x: torch.Tensor) -> float:
    """Distance of the samples' mean and standard deviation from the data distribution's."""
    return abs(float(x.mean()) - MU) + abs(float(x.std()) - S)


def _slope(errors: list[float], steps: list[int]) -> float:
    return math.log(errors[-1] / errors[0]) / math.log(steps[-1] / steps[0])


def test_higher_order_error_falls_faster_than_ddim():
    steps = [20, 40, 80]
    ddim = [ode_error(DDIMScheduler(1000, timestep_spacing="logsnr", clip_sample=False), n) for n in steps]
    second = [ode_error(_dpm(2, timestep_spacing="logsnr"), n) for n in steps]
    third = [ode_error(_dpm(3, timestep_spacing="logsnr"), n) for n in steps]
    assert -1.2 < _slope(ddim, steps) < -0.8  # first order
    assert _slope(second, steps) < -1.8 and _slope(third, steps) < -2.5
    assert second[0] < ddim[0] / 5 and third[0] < ddim[0] / 5
    # with the solver's own order 1 it is DDIM
    assert ode_error(_dpm(1, timestep_spacing="logsnr"), 20) == pytest.approx(ddim[0], rel=1e-6)


@pytest.mark.parametrize("spacing", ["uniform", "logsnr", "quadratic", "karras"])
def test_samples_converge_to_the_data_distribution(spacing):
    def distance(n):
        x, exact = solve(_dpm(2, timestep_spacing=spacing), n)
        return float((x - exact).abs().mean()), _gap(x), _gap(exact)

    (e10, d10, floor), (e40, _, _), (e160, d160, _) = distance(10), distance(40), distance(160)
    assert e160 < e40 < e10 and e160 < 2e-3
    # mean and std as close to the data's as the exact ODE's are from these 20000 starting points
    assert d160 < floor + 2e-3 and d160 < d10


def test_prediction_types_give_the_same_trajectory():
    x_eps, _ = solve(_dpm(2), 15, "epsilon")
    for prediction_type in ["v_prediction", "sample"]:
        x, _ = solve(_dpm(2, prediction_type=prediction_type), 15, prediction_type)
        torch.testing.assert_close(x, x_eps, atol=1e-9, rtol=0)


def test_full_steps_match_ddim():
    ddim, _ = solve(DDIMScheduler(1000, clip_sample=False), 1000)
    for order in (2, 3):
        x, exact = solve(_dpm(order), 1000)
        assert float((x - ddim).abs().max()) < 1e-2 and float((x - exact).abs().mean()) < 1e-4


def test_any_step_count_and_reuse_for_a_new_batch():
    scheduler = _dpm(2)
    first, _ = solve(scheduler, 37)  # 37 does not divide 1000
    again, _ = solve(scheduler, 37)  # the state is reset at the first time step
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    # a second batch without set_timesteps: stepping again from timesteps[0]
    x = torch.randn(4, dtype=torch.float64)
    for t in scheduler.timesteps:
        x, x0 = scheduler.step(torch.zeros_like(x), t, x)
    assert torch.equal(x, x0)  # the last step lands on the predicted clean sample


def test_orders_used():
    scheduler = _dpm(3)
    scheduler.set_timesteps(6)
    assert [scheduler._order(i) for i in range(6)] == [1, 2, 3, 2, 1, 1]
    assert [_dpm(3, lower_order_final=False)._order(i) for i in range(6)] == [1, 2, 3, 3, 3, 3]


def test_out_of_order_steps_and_unknown_timesteps_fail():
    scheduler = _dpm(2)
    scheduler.set_timesteps(5)
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="timestep 998 is not one of the 5 sampling steps"):
        scheduler.step(x, 998, x)
    scheduler.step(x, scheduler.timesteps[0], x)
    with pytest.raises(ValueError, match="must follow scheduler.timesteps in order: got timestep 500"):
        scheduler.step(x, scheduler.timesteps[2], x)


def test_bad_options():
    with pytest.raises(ValueError, match="orders 1 to 3, not solver_order=4"):
        _dpm(4)
    with pytest.raises(ValueError, match="prediction_type 'noise' is not one of"):
        DPMSolverMultistepScheduler(100, prediction_type="noise")


def test_clip_sample_bounds_the_prediction():
    scheduler = DPMSolverMultistepScheduler(100, prediction_type="sample")
    scheduler.set_timesteps(4)
    _, x0 = scheduler.step(torch.full((3,), 5.0), scheduler.timesteps[0], torch.zeros(3))
    assert torch.equal(x0, torch.ones(3))


def test_stochastic_samples_converge_to_the_data_distribution():
    """SDE-DPM-Solver++: no single ODE path, but the samples' distribution approaches the data's as steps grow, and
    the second order gets there with fewer steps than the first."""

    def gap(order, n):
        x, _ = solve(_dpm(order, stochastic=True), n)
        return _gap(x)

    first, second = [gap(1, n) for n in (5, 20, 200)], [gap(2, n) for n in (5, 20, 200)]
    assert first[0] > first[1] > first[2] and second[0] > second[1] > second[2]
    assert second[2] < 0.01  # mean and std of the 20000 samples within 0.01 of the data's
    assert second[1] < first[1] / 3 and second[2] < first[2]


def test_stochastic_steps_follow_the_generator():
    a, _ = solve(_dpm(2, stochastic=True), 12, seed=3)
    b, _ = solve(_dpm(2, stochastic=True), 12, seed=3)
    c, _ = solve(_dpm(2, stochastic=True), 12, seed=4)
    ode, _ = solve(_dpm(2), 12, seed=3)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, ode) and not torch.allclose(a[:100], c[:100])
    with pytest.raises(ValueError, match="orders 1 and 2"):
        _dpm(3, stochastic=True)
