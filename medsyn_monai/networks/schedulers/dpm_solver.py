"""DPM-Solver++ multistep sampler (second and third order) for MONAI diffusion models."""

from __future__ import annotations

import math

import torch

from medsyn_monai.networks.schedulers.multistep import MultistepScheduler

__all__ = ["DPMSolverMultistepScheduler"]


class DPMSolverMultistepScheduler(MultistepScheduler):
    """DPM-Solver++ (2M, 3M): a multistep solver of the diffusion ODE in data prediction, reaching the quality of
    hundreds of first-order steps in 10-20 model evaluations; with ``stochastic=True``, SDE-DPM-Solver++ (1, 2M), the
    same multistep scheme for the diffusion SDE, which adds fresh noise at each step as DDPM does.

    Lu et al., "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models", 2022
    (https://arxiv.org/abs/2211.01095), Algorithm 2 (2M, the "midpoint" form) and its third-order multistep extension;
    order 1 is DDIM. The stochastic variant integrates the reverse SDE exactly in its linear part (Lu et al. 2022,
    appendix; first order: ``x_t = sigma_t/sigma_s e^-h x_s + alpha_t (1 - e^-2h) x0 + sigma_t sqrt(1 - e^-2h) z``),
    whose noise corrects the errors that a deterministic sampler carries to the end. Works with epsilon-, v- and
    sample-predicting networks and with classifier-free guidance (the inferer passes the guided output to
    :meth:`step`). Interface, time steps and options: :class:`MultistepScheduler`.

    Args:
        num_train_timesteps: ``T`` of the training schedule.
        schedule: MONAI beta schedule of training.
        prediction_type: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        solver_order: 1 (DDIM), 2 (DPM-Solver++ 2M, the default) or 3 (3M; deterministic only).
        stochastic: SDE-DPM-Solver++ (order 1 or 2): fresh Gaussian noise at every step but the last, drawn from the
            ``generator`` passed to :meth:`step`.
        kwargs: ``timestep_spacing``, ``lower_order_final``, ``clip_sample`` ... of :class:`MultistepScheduler`.

    Example:
        >>> import torch
        >>> scheduler = DPMSolverMultistepScheduler(num_train_timesteps=1000, prediction_type="sample")
        >>> scheduler.set_timesteps(7)  # any number of steps
        >>> scheduler.timesteps.tolist()
        [999, 832, 666, 500, 333, 167, 0]
        >>> clean = torch.full((1, 1, 4, 4), 0.5)
        >>> x = torch.randn(1, 1, 4, 4)
        >>> for t in scheduler.timesteps:  # a network that predicts the clean image exactly
        ...     x, x0 = scheduler.step(clean, t, x)
        >>> torch.allclose(x, clean)
        True
    """

    max_order = 3

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        schedule: str = "linear_beta",
        prediction_type: str = "epsilon",
        solver_order: int = 2,
        stochastic: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(num_train_timesteps, schedule, prediction_type, solver_order, **kwargs)
        self.stochastic = bool(stochastic)
        if self.stochastic and self.solver_order > 2:
            raise ValueError(f"the stochastic DPM-Solver++ has orders 1 and 2, got solver_order={solver_order}.")

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One solver step from ``timestep`` to the next sampling time step (the clean image after ``t = 0``).

        Args:
            model_output: the network's (guided) output at ``sample``.
            timestep: the current time step, the next of ``timesteps``.
            sample: the current noisy sample.
            generator: random generator of the stochastic variant's noise (unused by the deterministic solver).

        Returns:
            ``(previous sample, predicted clean sample)``.
        """
        index = self._enter_step(timestep)
        x0 = self.data_prediction(model_output, int(timestep), sample)
        _, sigma_s, lambda_s = self._coefficients(int(timestep))
        self._remember(x0, lambda_s)
        target = self._target(index)
        if target is None:  # from t = 0 to the clean image: lambda -> inf, every order gives x0
            return x0, x0
        alpha_t, sigma_t, lambda_t = self._coefficients(target)
        h = lambda_t - lambda_s
        order = self._order(index)
        r0, d1_0 = 1.0, None  # first divided difference of the data predictions, for every order >= 2 (both variants)
        if order >= 2:
            r0 = (lambda_s - self._lambdas[-2]) / h
            d1_0 = (self._outputs[-1] - self._outputs[-2]) / r0
        if self.stochastic:
            return self._sde_step(sample, x0, sigma_s, alpha_t, sigma_t, h, d1_0, generator), x0
        phi = math.expm1(-h)  # e^-h - 1
        prev = (sigma_t / sigma_s) * sample - (alpha_t * phi) * x0
        if d1_0 is not None:
            if order == 2:
                prev = prev - (0.5 * alpha_t * phi) * d1_0
            else:
                r1 = (self._lambdas[-2] - self._lambdas[-3]) / h
                d1_1 = (self._outputs[-2] - self._outputs[-3]) / r1
                d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                prev = prev + (alpha_t * (phi / h + 1.0)) * d1 - (alpha_t * ((phi + h) / h**2 - 0.5)) * d2
        return prev, x0

    def _sde_step(
        self,
        sample: torch.Tensor,
        x0: torch.Tensor,
        sigma_s: float,
        alpha_t: float,
        sigma_t: float,
        h: float,
        d1_0: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """SDE-DPM-Solver++ step over ``h`` in lambda: first order, or second (midpoint form) with the divided
        difference ``d1_0`` of the last two data predictions."""
        one_minus = -math.expm1(-2.0 * h)  # 1 - e^-2h
        prev = (sigma_t / sigma_s * math.exp(-h)) * sample + (alpha_t * one_minus) * x0
        if d1_0 is not None:
            prev = prev + (0.5 * alpha_t * one_minus) * d1_0
        noise = torch.randn(sample.shape, generator=generator, device="cpu" if generator is None else generator.device)
        return prev + (sigma_t * math.sqrt(one_minus)) * noise.to(device=sample.device, dtype=sample.dtype)
