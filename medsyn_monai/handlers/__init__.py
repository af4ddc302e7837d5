from .best_checkpoint import BestCheckpointHandler
from .checkpoint import AtomicCheckpoint
from .ema import ExponentialMovingAverage
from .progress_bar import LossProgressBar
from .sample_grid import SampleGridHandler
from .time_budget import TimeBudget
from .training_stats import TrainingStatsHandler

__all__ = [
    "AtomicCheckpoint",
    "BestCheckpointHandler",
    "ExponentialMovingAverage",
    "LossProgressBar",
    "SampleGridHandler",
    "TimeBudget",
    "TrainingStatsHandler",
]
