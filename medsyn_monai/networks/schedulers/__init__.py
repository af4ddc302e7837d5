from .factory import SAMPLING_SCHEDULERS, sampling_scheduler

__all__ = ["SAMPLING_SCHEDULERS", "sampling_scheduler"]
