"""DPM-Solver++ multistep sampler (second and third order) for MONAI diffusion models."""

from __future__ import annotations

import math

import torch

from medsyn_monai.networks.schedulers.multistep import MultistepScheduler

__all__ = ["DPMSolverMultistepScheduler"]


class DPMSolverMultistepScheduler(MultistepScheduler):
    """DPM-Solver++ (2M, 3M): a multistep solver of the diffusion ODE in data prediction, reaching the quality of
    hundreds of first-order steps in 10-20 model evaluations.

    Lu et al., "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models", 2022
    (https://arxiv.org/abs/2211.01095), Algorithm 2 (2M, the "midpoint" form) and its third-order multistep extension;
    order 1 is DDIM. Works with epsilon-, v- and sample-predicting networks and with classifier-free guidance (the
    inferer passes the guided output to :meth:`step`). Interface, time steps and options: :class:`MultistepScheduler`.

    Args:
        num_train_timesteps: ``T`` of the training schedule.
        schedule: MONAI beta schedule of training.
        prediction_type: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        solver_order: 1 (DDIM), 2 (DPM-Solver++ 2M, the default) or 3 (3M).
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
        **kwargs,
    ) -> None:
        super().__init__(num_train_timesteps, schedule, prediction_type, solver_order, **kwargs)

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
            generator: unused (the solver is deterministic); accepted for the interface of MONAI's schedulers.

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
        phi = math.expm1(-h)  # e^-h - 1
        prev = (sigma_t / sigma_s) * sample - (alpha_t * phi) * x0
        order = self._order(index)
        if order >= 2:
            m0, m1 = self._outputs[-1], self._outputs[-2]
            r0 = (lambda_s - self._lambdas[-2]) / h
            d1_0 = (m0 - m1) / r0
            if order == 2:
                prev = prev - (0.5 * alpha_t * phi) * d1_0
            else:
                r1 = (self._lambdas[-2] - self._lambdas[-3]) / h
                d1_1 = (m1 - self._outputs[-3]) / r1
                d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                prev = prev + (alpha_t * (phi / h + 1.0)) * d1 - (alpha_t * ((phi + h) / h**2 - 0.5)) * d2
        return prev, x0
