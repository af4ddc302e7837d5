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
    ``step(model_output, timestep, sample)`` returns the previous sample first, then what the scheduler adds (the
    predicted clean sample for DDPM, DDIM and RFlow; ``None`` for PNDM). ``RFlowScheduler`` has ``timesteps`` only
    once ``set_timesteps`` has run, so ``isinstance(..., SamplingScheduler)`` holds for it from then on.
    """

    num_train_timesteps: int
    timesteps: torch.Tensor

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None: ...

    #: ``step(model_output, timestep, sample, ...)``: ``(previous sample, clean sample or None)``; schedulers take more
    #: arguments of their own (``generator`` for DDPM and DDIM, ``next_timestep`` for RFlow)
    step: Callable[..., tuple[torch.Tensor, torch.Tensor | None]]
