from .enums import (
    CTWindowPreset,
    DatasetLayout,
    LossType,
    PredictionType,
    SchedulerType,
    SourceFormat,
    Split,
    TimeInjection,
)

__all__ = [
    "CTWindowPreset",
    "DatasetLayout",
    "LossType",
    "PredictionType",
    "SchedulerType",
    "SourceFormat",
    "Split",
    "TimeInjection",
]
