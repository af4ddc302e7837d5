"""The sampling time steps of a model trained on ``T`` discrete steps, in the spacings the solver papers use."""

from __future__ import annotations

import numpy as np
import torch

from medsyn_monai.utils.enums import TimestepSpacing

__all__ = ["parse_spacing", "sampling_timesteps"]

#: ``rho`` of Karras et al. (2022), eq. 5
KARRAS_RHO = 7.0


def parse_spacing(spacing: str | TimestepSpacing) -> TimestepSpacing:
    """The :class:`~medsyn_monai.utils.enums.TimestepSpacing` named by ``spacing`` (any case).

    Raises:
        ValueError: an unknown name, with the known ones.
    """
    try:
        return TimestepSpacing(str(spacing).lower())
    except ValueError:
        raise ValueError(
            f"unknown timestep spacing {spacing!r}; choose one of {[s.value for s in TimestepSpacing]}."
        ) from None


def sampling_timesteps(
    alphas_cumprod: torch.Tensor,
    num_inference_steps: int,
    spacing: str | TimestepSpacing = TimestepSpacing.UNIFORM,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """``num_inference_steps`` distinct integer time steps from ``T - 1`` down to ``0``, spaced as asked.

    The model is evaluated once at each of them; a sampler's last update goes from ``t = 0`` to the clean image.
    Any count ``1 <= n <= T`` is allowed (no assumption that ``n`` divides ``T``): the ideal, real-valued times are
    rounded and, where rounding makes two equal (Karras or logSNR spacing with many steps), moved apart by one step.

    Args:
        alphas_cumprod: ``alpha_bar_t`` of the training schedule, ``(T,)``.
        num_inference_steps: ``n``, number of model evaluations.
        spacing: :class:`~medsyn_monai.utils.enums.TimestepSpacing`: ``"uniform"`` in ``t``, ``"quadratic"`` in
            ``sqrt(t)`` (DDIM, Song et al. 2021), ``"logsnr"`` in ``lambda = log(alpha / sigma)`` (DPM-Solver, Lu et
            al. 2022), ``"karras"`` in ``sigma^(1/7)`` (Karras et al. 2022).
        device: device of the result.

    Returns:
        ``(n,)`` int64, strictly decreasing, ``[T - 1, ..., 0]`` (``[T - 1]`` for ``n = 1``).

    Raises:
        ValueError: ``n`` outside ``[1, T]`` or an unknown spacing.

    Example:
        >>> from monai.networks.schedulers import DDPMScheduler
        >>> abar = DDPMScheduler(num_train_timesteps=1000).alphas_cumprod
        >>> sampling_timesteps(abar, 5).tolist()
        [999, 749, 500, 250, 0]
        >>> sampling_timesteps(abar, 5, "quadratic").tolist()
        [999, 562, 250, 62, 0]
        >>> len(set(sampling_timesteps(abar, 1000, "karras").tolist()))
        1000
    """
    abar = alphas_cumprod.detach().double().cpu().numpy()
    t_max = len(abar)
    n = int(num_inference_steps)
    if not 1 <= n <= t_max:
        raise ValueError(
            f"num_inference_steps={num_inference_steps} must be between 1 and the {t_max} steps the model was "
            "trained with."
        )
    kind = parse_spacing(spacing)
    if n == 1:
        return torch.tensor([t_max - 1], dtype=torch.long, device=device)
    u = np.linspace(0.0, 1.0, n)  # 0: the noisiest step, 1: the cleanest
    grid = np.arange(t_max, dtype=np.float64)
    if kind == TimestepSpacing.UNIFORM:
        times = (t_max - 1) * (1.0 - u)
    elif kind == TimestepSpacing.QUADRATIC:
        times = (t_max - 1) * (1.0 - u) ** 2
    elif kind == TimestepSpacing.LOGSNR:
        lam = 0.5 * (np.log(abar) - np.log1p(-abar))  # decreasing in t
        targets = lam[-1] + u * (lam[0] - lam[-1])
        times = np.interp(targets, lam[::-1], grid[::-1])
    else:
        log_sigma = 0.5 * (np.log1p(-abar) - np.log(abar))  # increasing in t
        s_max, s_min = np.exp(log_sigma[-1]) ** (1 / KARRAS_RHO), np.exp(log_sigma[0]) ** (1 / KARRAS_RHO)
        sigmas = (s_max + u * (s_min - s_max)) ** KARRAS_RHO
        times = np.interp(np.log(sigmas), log_sigma, grid)
    ascending = np.rint(times[::-1]).astype(np.int64)
    ascending[0] = 0
    for k in range(1, n):  # distinct: each at least one above the one before ...
        ascending[k] = max(ascending[k], ascending[k - 1] + 1)
    ascending[-1] = t_max - 1
    for k in range(n - 2, -1, -1):  # ... and at least one below the one after, within [0, T - 1]
        ascending[k] = min(ascending[k], ascending[k + 1] - 1)
    return torch.from_numpy(ascending[::-1].copy()).to(device)
