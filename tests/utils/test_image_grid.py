"""make_grid: volumes are shown by their middle slice."""

from __future__ import annotations

import torch

from medsyn_monai.utils import make_grid


def test_make_grid_shows_middle_slice_of_volumes():
    vol = -torch.ones(2, 1, 4, 4, 6)
    vol[..., 3] = 1.0  # only the middle slice (6 // 2) is white
    grid = make_grid(vol, nrow=2, padding=0)
    assert grid.shape == (4, 8, 1) and (grid == 255).all()
