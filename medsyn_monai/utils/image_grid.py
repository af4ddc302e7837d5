"""Turn batches of channel-first images in MONAI's (x, y) axis order into display grids."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

__all__ = ["to_display_uint8", "make_grid", "save_grid_png"]


def to_display_uint8(images: torch.Tensor | np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Map ``(B, C, X, Y)`` images in ``value_range`` to ``(B, Y, X, C)`` uint8 (rows first, as displays expect).

    Example:
        >>> to_display_uint8(torch.tensor([[[[-1.0, 1.0]]]])).shape  # one image, 1 channel, x=1, y=2
        (1, 2, 1, 1)
    """
    arr = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, np.float32)
    if arr.ndim != 4:
        raise ValueError(f"expected (B, C, X, Y) images, got shape {arr.shape}.")
    lo, hi = value_range
    arr = np.clip((arr - lo) / (hi - lo), 0.0, 1.0)
    return np.round(arr * 255).astype(np.uint8).transpose(0, 3, 2, 1)


def make_grid(
    images: torch.Tensor | np.ndarray,
    nrow: int | None = None,
    padding: int = 2,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> np.ndarray:
    """Tile ``(B, C, X, Y)`` images into one ``(H, W, C)`` uint8 grid (C = 1 or 3), ``nrow`` images per row.

    Volumes ``(B, C, X, Y, Z)`` are shown by their middle slice along the last axis.

    Example:
        >>> make_grid(torch.zeros(6, 1, 4, 4), nrow=3, padding=1).shape
        (11, 16, 1)
    """
    if images.ndim == 5:
        images = images[..., images.shape[-1] // 2]
    tiles = to_display_uint8(images, value_range)
    b, h, w, c = tiles.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    ncol = math.ceil(b / nrow)
    grid = np.zeros((ncol * h + (ncol + 1) * padding, nrow * w + (nrow + 1) * padding, c), dtype=np.uint8)
    for i in range(b):
        r, col = divmod(i, nrow)
        y0, x0 = padding + r * (h + padding), padding + col * (w + padding)
        grid[y0 : y0 + h, x0 : x0 + w] = tiles[i]
    return grid


def save_grid_png(grid: np.ndarray, path: str | Path) -> Path:
    """Write an ``(H, W, C)`` uint8 grid as PNG (grey for C = 1) atomically, creating parent folders."""
    from PIL import Image

    from medsyn_monai.utils.io import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
