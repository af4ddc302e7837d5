from .bundle_root import find_bundle_root
from .cli import FALSE_STRINGS, NONE_STRINGS, TRUE_STRINGS, as_bool
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
from .image_grid import make_grid, save_grid_png, to_display_uint8
from .io import atomic_write, json_ready, write_json
from .model_info import MODEL_INFO_NAME, load_model_info, save_model_info

__all__ = [
    "CTWindowPreset",
    "DatasetLayout",
    "FALSE_STRINGS",
    "LossType",
    "MODEL_INFO_NAME",
    "NONE_STRINGS",
    "PredictionType",
    "SchedulerType",
    "SourceFormat",
    "Split",
    "TRUE_STRINGS",
    "TimeInjection",
    "as_bool",
    "atomic_write",
    "find_bundle_root",
    "json_ready",
    "load_model_info",
    "make_grid",
    "save_grid_png",
    "save_model_info",
    "to_display_uint8",
    "write_json",
]
