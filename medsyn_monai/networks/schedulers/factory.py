"""The sampling scheduler of a trained model, chosen by one key (``scheduler_type`` of the bundle configs)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from monai.networks.schedulers import DDPMScheduler, Scheduler

from medsyn_monai.networks.schedulers.ddim import DDIMScheduler
from medsyn_monai.networks.schedulers.dpm_solver import DPMSolverMultistepScheduler
from medsyn_monai.networks.schedulers.protocol import SamplingScheduler
from medsyn_monai.networks.schedulers.unipc import UniPCMultistepScheduler
from medsyn_monai.utils.enums import SchedulerType

__all__ = [
    "DEFAULT_NUM_INFERENCE_STEPS",
    "DEFAULT_SCHEDULER_TYPE",
    "SAMPLING_SCHEDULERS",
    "sampling_scheduler",
    "scheduler_name",
]

#: the sampler and step count of the inference configs, the Deploy application and the Label app
#: (chosen by ``benchmarks/bench_samplers.py``, see docs/benchmarks.md)
DEFAULT_SCHEDULER_TYPE = SchedulerType.DPMPP_2M_SDE.value
DEFAULT_NUM_INFERENCE_STEPS = 20

#: scheduler (class, or class with its order) of each ``scheduler_type``
SAMPLING_SCHEDULERS: dict[str, Callable[..., Scheduler]] = {
    SchedulerType.DDPM: DDPMScheduler,
    SchedulerType.DDIM: DDIMScheduler,
    SchedulerType.DPMPP_2M: functools.partial(DPMSolverMultistepScheduler, solver_order=2),
    SchedulerType.DPMPP_3M: functools.partial(DPMSolverMultistepScheduler, solver_order=3),
    SchedulerType.DPMPP_2M_SDE: functools.partial(DPMSolverMultistepScheduler, solver_order=2, stochastic=True),
    SchedulerType.UNIPC: functools.partial(UniPCMultistepScheduler, solver_order=2),
}


def sampling_scheduler(
    kind: str | SchedulerType,
    num_train_timesteps: int = 1000,
    schedule: str = "linear_beta",
    prediction_type: str = "epsilon",
    **kwargs: Any,
) -> SamplingScheduler:
    """A scheduler for sampling a model trained with the given noise schedule.

    Args:
        kind: :class:`~medsyn_monai.utils.enums.SchedulerType`: ``"ddpm"`` (MONAI's, all ``num_train_timesteps``
            steps, stochastic), ``"ddim"`` (:class:`DDIMScheduler`), ``"dpmpp_2m"`` / ``"dpmpp_3m"``
            (:class:`DPMSolverMultistepScheduler` of order 2 / 3), ``"dpmpp_2m_sde"`` (its stochastic 2M) or
            ``"unipc"`` (:class:`UniPCMultistepScheduler`);
            all but DDPM take any number of steps, set by ``set_timesteps``.
        num_train_timesteps: the training schedule's ``T``.
        schedule: the training schedule's beta schedule (``"linear_beta"``, ``"scaled_linear_beta"``, ``"cosine"``).
        prediction_type: what the network predicts (``"epsilon"``, ``"v_prediction"``, ``"sample"``).
        kwargs: options of the scheduler class (e.g. ``timestep_spacing``, ``clip_sample``).

    Raises:
        ValueError: an unknown ``kind``.

    Example:
        >>> scheduler = sampling_scheduler("dpmpp_2m", num_train_timesteps=100, prediction_type="v_prediction")
        >>> type(scheduler).__name__, scheduler.num_train_timesteps, scheduler.prediction_type, scheduler.solver_order
        ('DPMSolverMultistepScheduler', 100, 'v_prediction', 2)
    """
    key = str(kind).lower()
    if key not in SAMPLING_SCHEDULERS:
        raise ValueError(f"unknown scheduler_type {kind!r}; choose one of {[str(k) for k in SAMPLING_SCHEDULERS]}.")
    scheduler = SAMPLING_SCHEDULERS[key](
        num_train_timesteps=int(num_train_timesteps), schedule=schedule, prediction_type=prediction_type, **kwargs
    )
    return cast(SamplingScheduler, scheduler)


def scheduler_name(scheduler: object) -> str:
    """The sampler's name for provenance records (manifests, few-shot prior settings): its class name, with
    ``" (stochastic)"`` for the stochastic variant of a deterministic solver class.

    Example:
        >>> scheduler_name(sampling_scheduler("dpmpp_2m_sde")), scheduler_name(sampling_scheduler("ddim"))
        ('DPMSolverMultistepScheduler (stochastic)', 'DDIMScheduler')
    """
    name = type(scheduler).__name__
    return f"{name} (stochastic)" if getattr(scheduler, "stochastic", False) else name
