"""What the multistep ODE solvers share: the noise schedule in ``alpha``, ``sigma``, ``lambda``, the data prediction
of each model output, the history of previous predictions, and the order of each step."""

from __future__ import annotations

import math

import torch
from monai.networks.schedulers import Scheduler

from medsyn_monai.networks.schedulers.spacing import parse_spacing, sampling_timesteps
from medsyn_monai.utils.enums import PredictionType, TimestepSpacing

__all__ = ["MultistepScheduler"]


class MultistepScheduler(Scheduler):
    """Base of the multistep samplers of the diffusion probability-flow ODE (DPM-Solver++, UniPC).

    The interface is that of MONAI's ``DDIMScheduler``: ``set_timesteps(n)`` chooses ``n`` time steps (any
    ``n <= num_train_timesteps``), ``timesteps`` lists them from noisy to clean, and
    ``step(model_output, timestep, sample)`` returns ``(previous sample, predicted clean sample)``. The model is
    evaluated once per time step; the step at ``t = 0`` lands on the clean image. Steps must be taken in the order of
    ``timesteps``; a step at ``timesteps[0]`` starts a new sampling run (a new batch needs no new ``set_timesteps``).

    Work is done in the half log signal-to-noise ratio ``lambda_t = log(alpha_t / sigma_t)`` with
    ``alpha_t = sqrt(alpha_bar_t)``, ``sigma_t = sqrt(1 - alpha_bar_t)``, on the data prediction ``x0`` of each model
    output (epsilon, v or sample prediction), as DPM-Solver++ (Lu et al. 2022, https://arxiv.org/abs/2211.01095)
    and UniPC (Zhao et al. 2023, https://arxiv.org/abs/2302.04867) do for guided sampling.

    Args:
        num_train_timesteps: ``T`` of the training schedule.
        schedule: MONAI beta schedule of training (``"linear_beta"``, ``"scaled_linear_beta"``, ``"cosine"``, ...).
        prediction_type: what the network predicts: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        solver_order: order of the multistep update (lower while too few previous outputs exist).
        timestep_spacing: :class:`~medsyn_monai.utils.enums.TimestepSpacing` of the sampling steps.
        lower_order_final: step down the order over the last steps (order ``<= n - i`` at step ``i``), which steadies
            sampling with few steps (both papers).
        clip_sample: clip each predicted clean sample to ``[clip_sample_min, clip_sample_max]`` (as MONAI's DDIM does
            by default; the images of this project lie in ``[-1, 1]``).
        clip_sample_min: lower clip bound.
        clip_sample_max: upper clip bound.
        schedule_args: arguments of the beta schedule (``beta_start``, ``beta_end``, ...).

    Raises:
        ValueError: an unknown prediction type or spacing, or an order the solver does not have.
    """

    #: highest ``solver_order`` a subclass implements
    max_order: int = 3

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        schedule: str = "linear_beta",
        prediction_type: str = PredictionType.EPSILON,
        solver_order: int = 2,
        timestep_spacing: str = TimestepSpacing.UNIFORM,
        lower_order_final: bool = True,
        clip_sample: bool = True,
        clip_sample_min: float = -1.0,
        clip_sample_max: float = 1.0,
        **schedule_args,
    ) -> None:
        super().__init__(num_train_timesteps, schedule, **schedule_args)
        if prediction_type not in {p.value for p in PredictionType}:
            raise ValueError(f"prediction_type {prediction_type!r} is not one of {[p.value for p in PredictionType]}.")
        if not 1 <= int(solver_order) <= self.max_order:
            name = type(self).__name__
            raise ValueError(f"{name} has orders 1 to {self.max_order}, not solver_order={solver_order}.")
        self.prediction_type = str(prediction_type)
        self.solver_order = int(solver_order)
        self.timestep_spacing = parse_spacing(timestep_spacing)
        self.lower_order_final = bool(lower_order_final)
        self.clip_sample = bool(clip_sample)
        self.clip_sample_values = (float(clip_sample_min), float(clip_sample_max))
        self.init_noise_sigma = 1.0
        abar = self.alphas_cumprod.double()
        self._alpha = abar.sqrt().tolist()
        self._sigma = (1.0 - abar).sqrt().tolist()
        self._lambda = [math.log(a) - math.log(s) for a, s in zip(self._alpha, self._sigma, strict=True)]
        self.num_inference_steps: int
        self.timesteps: torch.Tensor
        self.set_timesteps(self.num_train_timesteps)

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Choose ``num_inference_steps`` sampling steps (:func:`sampling_timesteps`) and forget any previous run.

        Args:
            num_inference_steps: number of model evaluations, ``1 <= n <= num_train_timesteps``.
            device: device of ``timesteps``.
        """
        self.timesteps = sampling_timesteps(self.alphas_cumprod, num_inference_steps, self.timestep_spacing, device)
        self.num_inference_steps = int(num_inference_steps)
        self._positions = {int(t): i for i, t in enumerate(self.timesteps.tolist())}
        self.reset()

    def reset(self) -> None:
        """Forget the previous outputs (done by a step at ``timesteps[0]`` too)."""
        self._step_index = -1
        self._outputs: list[torch.Tensor] = []
        self._lambdas: list[float] = []

    def _enter_step(self, timestep: int | torch.Tensor) -> int:
        """Position of ``timestep`` in ``timesteps``; a new run at the first, an error out of order."""
        t = int(timestep)
        if t not in self._positions:
            raise ValueError(
                f"timestep {t} is not one of the {self.num_inference_steps} sampling steps of this scheduler "
                f"({self.timesteps.tolist()[:4]}...); call set_timesteps(num_inference_steps) and step through "
                "scheduler.timesteps in order."
            )
        index = self._positions[t]
        if index == 0:
            self.reset()
        elif index != self._step_index + 1:
            expected = self.timesteps[self._step_index + 1] if self._step_index + 1 < len(self.timesteps) else None
            raise ValueError(
                f"{type(self).__name__} steps must follow scheduler.timesteps in order: got timestep {t} where "
                f"{expected} was due; start again at timesteps[0]."
            )
        self._step_index = index
        return index

    def _target(self, index: int) -> int | None:
        """The time step that step ``index`` lands on; ``None`` for the clean image after the last."""
        return int(self.timesteps[index + 1]) if index + 1 < len(self.timesteps) else None

    def _coefficients(self, t: int | None) -> tuple[float, float, float]:
        """``(alpha_t, sigma_t, lambda_t)``; the clean image (``t`` None) is ``(1, 0, inf)``."""
        if t is None:
            return 1.0, 0.0, math.inf
        return self._alpha[t], self._sigma[t], self._lambda[t]

    def _order(self, index: int) -> int:
        """Order of step ``index``: at most the outputs seen so far, and stepping down at the end."""
        order = min(self.solver_order, index + 1)
        if self.lower_order_final:
            order = min(order, max(1, len(self.timesteps) - index - 1))
        return order

    def data_prediction(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        """The predicted clean sample ``x0`` of a model output at ``timestep`` (clipped if ``clip_sample``).

        Args:
            model_output: the network's (guided) output.
            timestep: its time step.
            sample: the noisy sample the network saw.
        """
        alpha, sigma, _ = self._coefficients(int(timestep))
        if self.prediction_type == PredictionType.EPSILON:
            x0 = (sample - sigma * model_output) / alpha
        elif self.prediction_type == PredictionType.V_PREDICTION:
            x0 = alpha * sample - sigma * model_output
        else:
            x0 = model_output
        if self.clip_sample:
            x0 = x0.clamp(*self.clip_sample_values)
        return x0

    def _remember(self, x0: torch.Tensor, lam: float) -> None:
        self._outputs = [*self._outputs[-(self.max_order - 1) :], x0] if self.max_order > 1 else [x0]
        self._lambdas = [*self._lambdas[-(self.max_order - 1) :], lam] if self.max_order > 1 else [lam]
