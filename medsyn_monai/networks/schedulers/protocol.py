"""What the project needs of a sampling scheduler (MONAI's base ``Scheduler`` does not declare it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

__all__ = ["SamplingScheduler"]


@runtime_checkable
class SamplingScheduler(Protocol):
    """A scheduler that samples: MONAI's ``DDPMScheduler``, ``DDIMScheduler``, ``PNDMScheduler`` and
    ``RFlowScheduler`` fit it, and so must every scheduler the inferers, samplers and sample grids are given.

    ``set_timesteps(n)`` chooses ``n`` sampling steps (``timesteps``, from noisy to clean) and
    ``step(model_output, timestep, sample)`` returns ``(previous sample, predicted clean sample)``.
    """

    num_train_timesteps: int
    timesteps: torch.Tensor

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None: ...

    #: ``step(model_output, timestep, sample, ...)``: ``(previous sample, predicted clean sample)``; schedulers take
    #: further arguments of their own (``generator`` for DDPM and DDIM, ``next_timestep`` for RFlow)
    step: Callable[..., tuple[torch.Tensor, ...]]
