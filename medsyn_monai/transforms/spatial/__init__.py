"""Spatial transforms: volume to 2D slices, centre/random crop to the target aspect ratio then resize."""

from __future__ import annotations

from . import array, dictionary
from .array import *  # noqa: F403
from .dictionary import *  # noqa: F403

__all__ = [*array.__all__, *dictionary.__all__]
