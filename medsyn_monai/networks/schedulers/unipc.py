"""UniPC multistep predictor-corrector sampler (B(h) = e^h - 1) for MONAI diffusion models."""

from __future__ import annotations

import math

import numpy as np
import torch

from medsyn_monai.networks.schedulers.multistep import MultistepScheduler

__all__ = ["UniPCMultistepScheduler"]


class UniPCMultistepScheduler(MultistepScheduler):
    """UniPC: a unified predictor (UniP) and corrector (UniC) of the diffusion ODE in data prediction; the corrector
    reuses the model output of the new point, so each step raises the order by one at no extra evaluation.

    Zhao et al., "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of Diffusion Models", NeurIPS 2023
    (https://arxiv.org/abs/2302.04867): UniP-p and UniC-p with ``B(h) = e^h - 1`` ("bh2", the paper's choice for
    guided sampling), data prediction. Works with epsilon-, v- and sample-predicting networks and with classifier-free
    guidance. Interface, time steps and options: :class:`MultistepScheduler`.

    Args:
        num_train_timesteps: ``T`` of the training schedule.
        schedule: MONAI beta schedule of training.
        prediction_type: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        solver_order: order ``p`` of the predictor, 1 to 3 (2, the default, is the paper's choice with guidance).
        use_corrector: apply UniC after each model evaluation (``False``: the predictor alone).
        kwargs: ``timestep_spacing``, ``lower_order_final``, ``clip_sample`` ... of :class:`MultistepScheduler`.

    Example:
        >>> import torch
        >>> scheduler = UniPCMultistepScheduler(num_train_timesteps=100, prediction_type="sample")
        >>> scheduler.set_timesteps(5)
        >>> clean = torch.full((1, 1, 4, 4), -0.25)
        >>> x = torch.randn(1, 1, 4, 4)
        >>> for t in scheduler.timesteps:
        ...     x, _ = scheduler.step(clean, t, x)
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
        use_corrector: bool = True,
        **kwargs,
    ) -> None:
        self.use_corrector = bool(use_corrector)
        super().__init__(num_train_timesteps, schedule, prediction_type, solver_order, **kwargs)

    def reset(self) -> None:
        super().reset()
        self._last_sample: torch.Tensor | None = None
        self._last_order = 1

    @staticmethod
    def _weights(h: float, rks: list[float], order: int) -> tuple[float, np.ndarray, np.ndarray]:
        """``B(h)`` and the system ``R rho = b`` of the paper (Algorithms 2-3), for ``hh = -h`` (data prediction)."""
        hh = -h
        h_phi_k = math.expm1(hh) / hh - 1.0
        factorial = 1
        b_h = math.expm1(hh)
        rows, b = [], []
        for k in range(1, order + 1):
            rows.append([r ** (k - 1) for r in rks])
            b.append(h_phi_k * factorial / b_h)
            factorial *= k + 1
            h_phi_k = h_phi_k / hh - 1.0 / factorial
        return b_h, np.asarray(rows, dtype=np.float64), np.asarray(b, dtype=np.float64)

    def _differences(self, h: float, lambda_s0: float, count: int) -> tuple[list[float], list[torch.Tensor]]:
        """``r_k`` and ``D1_k = (m_k - m0) / r_k`` of the ``count`` outputs before the newest one in the history."""
        m0 = self._outputs[-1]
        rks, d1s = [], []
        for k in range(1, count + 1):
            rk = (self._lambdas[-(k + 1)] - lambda_s0) / h
            rks.append(rk)
            d1s.append((self._outputs[-(k + 1)] - m0) / rk)
        return rks, d1s

    def _correct(self, x0_t: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        """UniC: the sample at ``timestep`` corrected with its own model output ``x0_t`` (history not yet updated)."""
        assert self._last_sample is not None
        order = self._last_order
        alpha_t, sigma_t, lambda_t = self._coefficients(timestep)
        _, sigma_s0, lambda_s0 = self._lambda_point(-1)
        h = lambda_t - lambda_s0
        rks, d1s = self._differences(h, lambda_s0, order - 1)
        b_h, rows, b = self._weights(h, [*rks, 1.0], order)
        rhos = [0.5] if order == 1 else np.linalg.solve(rows, b).tolist()
        m0 = self._outputs[-1]
        corrected = (sigma_t / sigma_s0) * self._last_sample - (alpha_t * math.expm1(-h)) * m0
        residual = rhos[-1] * (x0_t - m0)
        for rho, d1 in zip(rhos[:-1], d1s, strict=True):
            residual = residual + rho * d1
        return corrected - (alpha_t * b_h) * residual

    def _lambda_point(self, k: int) -> tuple[float, float, float]:
        """``(alpha, sigma, lambda)`` of the ``k``-th remembered output (``-1``: the newest)."""
        lam = self._lambdas[k]
        sigma = 1.0 / math.sqrt(1.0 + math.exp(2.0 * lam))
        return math.sqrt(1.0 - sigma**2), sigma, lam

    def _predict(self, sample: torch.Tensor, target: int, order: int) -> torch.Tensor:
        """UniP: from the newest remembered point to ``target``."""
        alpha_t, sigma_t, lambda_t = self._coefficients(target)
        _, sigma_s0, lambda_s0 = self._lambda_point(-1)
        h = lambda_t - lambda_s0
        m0 = self._outputs[-1]
        prev = (sigma_t / sigma_s0) * sample - (alpha_t * math.expm1(-h)) * m0
        if order == 1:
            return prev
        rks, d1s = self._differences(h, lambda_s0, order - 1)
        b_h, rows, b = self._weights(h, [*rks, 1.0], order)
        rhos = [0.5] if order == 2 else np.linalg.solve(rows[:-1, :-1], b[:-1]).tolist()
        residual = rhos[0] * d1s[0]
        for rho, d1 in zip(rhos[1:], d1s[1:], strict=True):
            residual = residual + rho * d1
        return prev - (alpha_t * b_h) * residual

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Correct the current sample with its model output (UniC), then predict the next (UniP).

        Args:
            model_output: the network's (guided) output at ``sample``.
            timestep: the current time step, the next of ``timesteps``.
            sample: the current noisy sample (as the previous :meth:`step` returned it).
            generator: unused (the solver is deterministic); accepted for the interface of MONAI's schedulers.

        Returns:
            ``(previous sample, predicted clean sample)``.
        """
        index = self._enter_step(timestep)
        t = int(timestep)
        x0 = self.data_prediction(model_output, t, sample)
        if self.use_corrector and index > 0 and self._last_sample is not None:
            sample = self._correct(x0, t, sample)
        self._remember(x0, self._coefficients(t)[2])
        target = self._target(index)
        if target is None:  # from t = 0 to the clean image: every order gives x0
            return x0, x0
        order = self._order(index)
        self._last_sample, self._last_order = sample, order
        return self._predict(sample, target, order), x0
