"""The sampling scheduler of a trained model, chosen by one key (``scheduler_type`` of the bundle configs)."""

from __future__ import annotations

from typing import cast

from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, Scheduler

from medsyn_monai.networks.schedulers.protocol import SamplingScheduler
from medsyn_monai.utils.enums import SchedulerType

__all__ = ["SAMPLING_SCHEDULERS", "sampling_scheduler"]

#: scheduler class of each ``scheduler_type``
SAMPLING_SCHEDULERS: dict[str, type[Scheduler]] = {SchedulerType.DDPM: DDPMScheduler, SchedulerType.DDIM: DDIMScheduler}


def sampling_scheduler(
    kind: str | SchedulerType,
    num_train_timesteps: int = 1000,
    schedule: str = "linear_beta",
    prediction_type: str = "epsilon",
) -> SamplingScheduler:
    """A MONAI scheduler for sampling a model trained with the given noise schedule.

    Args:
        kind: ``"ddpm"`` (all ``num_train_timesteps`` steps, stochastic) or ``"ddim"`` (any number of steps, set by
            ``set_timesteps``) (:class:`~medsyn_monai.utils.enums.SchedulerType`).
        num_train_timesteps: the training schedule's ``T``.
        schedule: the training schedule's beta schedule (``"linear_beta"``, ``"scaled_linear_beta"``, ``"cosine"``).
        prediction_type: what the network predicts (``"epsilon"``, ``"v_prediction"``, ``"sample"``).

    Raises:
        ValueError: an unknown ``kind``.

    Example:
        >>> scheduler = sampling_scheduler("ddim", num_train_timesteps=100, prediction_type="v_prediction")
        >>> type(scheduler).__name__, scheduler.num_train_timesteps, scheduler.prediction_type
        ('DDIMScheduler', 100, 'v_prediction')
    """
    key = str(kind).lower()
    if key not in SAMPLING_SCHEDULERS:
        raise ValueError(f"unknown scheduler_type {kind!r}; choose one of {list(SAMPLING_SCHEDULERS)}.")
    scheduler = SAMPLING_SCHEDULERS[key](
        num_train_timesteps=int(num_train_timesteps), schedule=schedule, prediction_type=prediction_type
    )
    return cast(SamplingScheduler, scheduler)
