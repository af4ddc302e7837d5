"""A Gaussian toy data set whose exact network output is known: data ``x0 ~ N(MU, S^2)`` per pixel, so the
posterior mean of the noise is ``E[eps | x_t] = sigma (x_t - alpha MU) / (alpha^2 S^2 + sigma^2)`` and the
probability-flow ODE maps a start ``x_T`` to ``MU + S (x_T - alpha_T MU) / sqrt(alpha_T^2 S^2 + sigma_T^2)``."""

from __future__ import annotations

import inspect

import torch

MU, S = 0.3, 0.5


def oracle_output(alphas_cumprod: torch.Tensor, x: torch.Tensor, t: int, prediction_type: str, mu=MU, s=S):
    """The exact (posterior-mean) network output at ``x`` and time step ``t``."""
    abar = alphas_cumprod.double()[int(t)]
    a, sg = abar.sqrt().item(), (1 - abar).sqrt().item()
    eps = sg * (x - a * mu) / (a * a * s * s + sg * sg)
    x0 = (x - sg * eps) / a
    return {"epsilon": eps, "sample": x0, "v_prediction": a * eps - sg * x0}[prediction_type]


def ode_solution(alphas_cumprod: torch.Tensor, x_start: torch.Tensor, mu=MU, s=S) -> torch.Tensor:
    """Where the exact probability-flow ODE takes ``x_start`` (at ``t = T - 1``) at ``t = 0``."""
    abar = alphas_cumprod.double()[-1]
    a, sg = abar.sqrt().item(), (1 - abar).sqrt().item()
    return mu + s * (x_start - a * mu) / (a * a * s * s + sg * sg) ** 0.5


def solve(scheduler, num_steps: int, prediction_type: str = "epsilon", n: int = 20000, seed: int = 0):
    """Sample the toy data with ``scheduler`` and the oracle; returns ``(samples, exact ODE solutions)``."""
    scheduler.set_timesteps(num_steps)
    x_start = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x_start.clone()
    generator = torch.Generator().manual_seed(seed + 1)
    for t in scheduler.timesteps:
        out = oracle_output(scheduler.alphas_cumprod, x, int(t), prediction_type)
        if "generator" in inspect.signature(scheduler.step).parameters:
            x, _ = scheduler.step(out, t, x, generator=generator)
        else:
            x, _ = scheduler.step(out, t, x)
    return x, ode_solution(scheduler.alphas_cumprod, x_start)


def ode_error(scheduler, num_steps: int, prediction_type: str = "epsilon") -> float:
    """Mean absolute distance of the samples from the exact ODE solutions."""
    x, exact = solve(scheduler, num_steps, prediction_type)
    return float((x - exact).abs().mean())
