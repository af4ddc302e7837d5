"""Helpers shared by the tests of :mod:`medsyn_monai.data`."""

from __future__ import annotations

import numpy as np


def to_xy(arr: np.ndarray) -> np.ndarray:
    """(rows, cols[, 3]) -> MONAI's channel-first (C, x, y)."""
    return arr.T[None] if arr.ndim == 2 else np.transpose(arr, (2, 1, 0))
