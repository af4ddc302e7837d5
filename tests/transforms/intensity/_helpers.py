"""Helpers shared by the tests of :mod:`medsyn_monai.transforms.intensity`."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor


def hu_image(*values: float) -> np.ndarray:
    """A (1, N) float32 image of the given values (e.g. Hounsfield units)."""
    return np.array([values], dtype=np.float32)


def mono_image(
    values, interpretation="MONOCHROME1", key="photometric_interpretation", dtype=torch.float32
) -> MetaTensor:
    """A one-channel X-ray image whose meta data name its photometric interpretation (``key``) and file."""
    return MetaTensor(torch.tensor([values], dtype=dtype), meta={key: interpretation, "filename_or_obj": "cr.dcm"})
