from .best_checkpoint import BestCheckpointHandler
from .checkpoint import (
    AtomicCheckpoint,
    NonFiniteWeightsError,
    SettingsMismatchError,
    parse_resume,
    settings_differences,
)
from .differential_privacy import DifferentialPrivacy, PrivacyBudgetError
from .ema import ExponentialMovingAverage
from .progress_bar import LossProgressBar
from .sample_grid import SampleGridHandler
from .time_budget import TimeBudget
from .training_stats import TrainingStatsHandler

__all__ = [
    "DifferentialPrivacy",
    "PrivacyBudgetError",
    "AtomicCheckpoint",
    "BestCheckpointHandler",
    "ExponentialMovingAverage",
    "LossProgressBar",
    "NonFiniteWeightsError",
    "SampleGridHandler",
    "SettingsMismatchError",
    "TimeBudget",
    "TrainingStatsHandler",
    "parse_resume",
    "settings_differences",
]
