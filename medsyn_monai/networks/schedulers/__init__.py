from .factory import SAMPLING_SCHEDULERS, sampling_scheduler
from .protocol import SamplingScheduler

__all__ = ["SAMPLING_SCHEDULERS", "SamplingScheduler", "sampling_scheduler"]
