"""MONAI-style transforms for medical image diffusion: intensity (CT, X-ray, colour) and spatial (slices, crops).

Every class has a dictionary version ``<Name>d`` with aliases ``<Name>D`` and ``<Name>Dict``.
"""

from __future__ import annotations

from . import compose, intensity, spatial
from .compose import *  # noqa: F403
from .intensity import *  # noqa: F403
from .spatial import *  # noqa: F403

__all__ = [*compose.__all__, *intensity.__all__, *spatial.__all__]
