from .ddim import DDIMScheduler
from .dpm_solver import DPMSolverMultistepScheduler
from .factory import (
    DEFAULT_NUM_INFERENCE_STEPS,
    DEFAULT_SCHEDULER_TYPE,
    SAMPLING_SCHEDULERS,
    sampling_scheduler,
    scheduler_name,
)
from .multistep import MultistepScheduler
from .protocol import SamplingScheduler
from .spacing import parse_spacing, sampling_timesteps
from .unipc import UniPCMultistepScheduler

__all__ = [
    "DEFAULT_NUM_INFERENCE_STEPS",
    "DEFAULT_SCHEDULER_TYPE",
    "DDIMScheduler",
    "DPMSolverMultistepScheduler",
    "MultistepScheduler",
    "SAMPLING_SCHEDULERS",
    "SamplingScheduler",
    "UniPCMultistepScheduler",
    "parse_spacing",
    "sampling_scheduler",
    "sampling_timesteps",
    "scheduler_name",
]
