"""Intensity transforms: CT windowing, X-ray normalisation, MONOCHROME1 inversion, colour to grey, range scaling."""

from __future__ import annotations

from . import array, dictionary
from .array import *  # noqa: F403
from .dictionary import *  # noqa: F403

__all__ = [*array.__all__, *dictionary.__all__]
