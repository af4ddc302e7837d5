from .bundle_root import find_bundle_root
from .cli import FALSE_STRINGS, NONE_STRINGS, TRUE_STRINGS, as_bool
from .enums import (
    CTWindowPreset,
    DatasetLayout,
    ExportFormat,
    LossType,
    PredictionType,
    ResumeMode,
    SchedulerType,
    SourceFormat,
    Split,
    TimeInjection,
)
from .image_grid import make_grid, save_grid_png, to_display_uint8
from .io import (
    UnsafeCheckpointError,
    atomic_write,
    file_sha256,
    json_ready,
    load_torch_file,
    remove_stale_temp_files,
    write_csv,
    write_json,
)
from .model_info import MODEL_INFO_NAME, load_model_info, save_model_info
from .run_lock import RunLock, RunLockedError

__all__ = [
    "CTWindowPreset",
    "DatasetLayout",
    "ExportFormat",
    "FALSE_STRINGS",
    "LossType",
    "MODEL_INFO_NAME",
    "NONE_STRINGS",
    "PredictionType",
    "ResumeMode",
    "RunLock",
    "RunLockedError",
    "SchedulerType",
    "SourceFormat",
    "Split",
    "TRUE_STRINGS",
    "TimeInjection",
    "UnsafeCheckpointError",
    "as_bool",
    "atomic_write",
    "file_sha256",
    "find_bundle_root",
    "json_ready",
    "load_model_info",
    "load_torch_file",
    "make_grid",
    "remove_stale_temp_files",
    "save_grid_png",
    "save_model_info",
    "to_display_uint8",
    "write_csv",
    "write_json",
]
