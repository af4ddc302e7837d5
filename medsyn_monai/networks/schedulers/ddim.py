"""MONAI's DDIM sampler, stepping to the time step that actually comes next."""

from __future__ import annotations

import torch
from monai.networks.schedulers import DDIMScheduler as MonaiDDIMScheduler

from medsyn_monai.networks.schedulers.spacing import parse_spacing, sampling_timesteps
from medsyn_monai.utils.enums import PredictionType, TimestepSpacing

__all__ = ["DDIMScheduler"]


class DDIMScheduler(MonaiDDIMScheduler):
    """DDIM (Song et al., "Denoising Diffusion Implicit Models", ICLR 2021, https://arxiv.org/abs/2010.02502) whose
    every step lands on the next of its own ``timesteps``.

    MONAI's ``DDIMScheduler.step`` goes from ``t`` to ``t - T // n`` while ``set_timesteps(n)`` spaces the steps by
    ``(T - 1) / (n - 1)``, rounded: the two disagree unless ``n = T``, most when ``n`` does not divide ``T``
    (``n = 25`` of ``T = 1000``: the sample reaches ``t - 40`` and the network is then told ``t - 41.6``), which
    degraded the images of the cell bundle's steps ablation. Here the step target is the next entry of ``timesteps``
    (the clean image after the last), so any ``n <= T`` and every :class:`~medsyn_monai.utils.enums.TimestepSpacing`
    work. Same arguments and results as MONAI's class otherwise (it is a subclass; ``n = T`` gives identical steps).

    Args:
        num_train_timesteps: ``T`` of the training schedule.
        schedule: MONAI beta schedule of training.
        timestep_spacing: spacing of the sampling steps (``"uniform"``: MONAI's own time steps).
        kwargs: MONAI ``DDIMScheduler`` arguments (``prediction_type``, ``clip_sample``, ``set_alpha_to_one``, ...).

    Example:
        >>> import torch
        >>> scheduler = DDIMScheduler(num_train_timesteps=1000, prediction_type="sample")
        >>> scheduler.set_timesteps(3)
        >>> scheduler.timesteps.tolist()
        [999, 500, 0]
        >>> x, x0 = scheduler.step(torch.zeros(1, 1, 2, 2), 999, torch.randn(1, 1, 2, 2))  # lands on t = 500
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        schedule: str = "linear_beta",
        timestep_spacing: str = TimestepSpacing.UNIFORM,
        **kwargs,
    ) -> None:
        self.timestep_spacing = parse_spacing(timestep_spacing)
        super().__init__(num_train_timesteps, schedule, **kwargs)

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Choose ``num_inference_steps`` sampling steps from ``T - 1`` to ``0``.

        Args:
            num_inference_steps: number of model evaluations, ``1 <= n <= num_train_timesteps``.
            device: device of ``timesteps``.
        """
        if self.timestep_spacing == TimestepSpacing.UNIFORM:
            super().set_timesteps(num_inference_steps, device)  # MONAI's steps (with its steps_offset)
        else:
            self.timesteps = sampling_timesteps(self.alphas_cumprod, num_inference_steps, self.timestep_spacing, device)
            self.num_inference_steps = int(num_inference_steps)
        self._next = dict(zip(self.timesteps.tolist(), [*self.timesteps.tolist()[1:], -1], strict=True))

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One DDIM step from ``timestep`` to the next of ``timesteps`` (eq. 12 of the paper; ``eta`` > 0 adds the
        noise of eq. 16).

        Args:
            model_output: the network's (guided) output.
            timestep: the current time step, one of ``timesteps``.
            sample: the current noisy sample.
            eta: noise weight (0: deterministic DDIM, 1: DDPM-like).
            generator: random generator of the noise when ``eta > 0``.

        Returns:
            ``(previous sample, predicted clean sample)``.

        Raises:
            ValueError: ``timestep`` is not one of ``timesteps``.
        """
        t = int(timestep)
        if t not in self._next:
            raise ValueError(
                f"timestep {t} is not one of the {self.num_inference_steps} sampling steps of this scheduler; call "
                "set_timesteps(num_inference_steps) and step through scheduler.timesteps."
            )
        prev_t = self._next[t]
        abar_t = self.alphas_cumprod[t]
        abar_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        if self.prediction_type == PredictionType.EPSILON:
            x0 = (sample - (1 - abar_t) ** 0.5 * model_output) / abar_t**0.5
            eps = model_output
        elif self.prediction_type == PredictionType.SAMPLE:
            x0 = model_output
            eps = (sample - abar_t**0.5 * x0) / (1 - abar_t) ** 0.5
        else:
            x0 = abar_t**0.5 * sample - (1 - abar_t) ** 0.5 * model_output
            eps = abar_t**0.5 * model_output + (1 - abar_t) ** 0.5 * sample
        if self.clip_sample:
            x0 = torch.clamp(x0, self.clip_sample_values[0], self.clip_sample_values[1])
        variance = self._get_variance(t, prev_t)
        std = eta * variance**0.5
        prev = abar_prev**0.5 * x0 + (1 - abar_prev - std**2) ** 0.5 * eps
        if eta > 0:
            noise = torch.randn(model_output.shape, dtype=model_output.dtype, generator=generator,
                                device=model_output.device)  # fmt: skip
            prev = prev + std * noise
        return prev, x0
