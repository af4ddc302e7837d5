"""Spatial transforms: volume to 2D slices, centre/random crop to the target aspect ratio then resize."""

from __future__ import annotations

from .array import CenterCropResize, RandCropResize, VolumeToSlices
from .dictionary import (
    CenterCropResizeD,
    CenterCropResized,
    CenterCropResizeDict,
    RandCropResizeD,
    RandCropResized,
    RandCropResizeDict,
    VolumeToSlicesD,
    VolumeToSlicesd,
    VolumeToSlicesDict,
)

__all__ = [
    "VolumeToSlices",
    "CenterCropResize",
    "RandCropResize",
    "VolumeToSlicesd",
    "VolumeToSlicesD",
    "VolumeToSlicesDict",
    "CenterCropResized",
    "CenterCropResizeD",
    "CenterCropResizeDict",
    "RandCropResized",
    "RandCropResizeD",
    "RandCropResizeDict",
]
