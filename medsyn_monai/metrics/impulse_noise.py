"""Impulse ("salt-and-pepper") noise: isolated pixels far from their neighbourhood's median."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["impulse_noise_rate"]


def impulse_noise_rate(
    images: torch.Tensor, threshold: float = 0.5, kernel_size: int = 3, value_range: float = 2.0
) -> torch.Tensor:
    """Fraction of pixels of each image that differ from the median of their neighbourhood by more than ``threshold``.

    A residual-noise score for generated images: salt-and-pepper artefacts (isolated dark or bright pixels left
    by an unconverged sampler) are far from the median of their ``kernel_size`` neighbourhood, while smooth regions
    and edges mostly are not (a median filter keeps edges). Compare the score of synthetic images with that of real
    images of the same size: real images set the floor (fine texture, sharp thin structures).

    The median is taken over the ``kernel_size × kernel_size`` window of each channel of 2D images (of every 2D
    slice along the last axis for 3D volumes), with reflected borders.

    Args:
        images: ``(N, C, H, W)`` or ``(N, C, H, W, D)`` images.
        threshold: absolute difference to the median, in units where the intensity range is ``value_range``
            (default 0.5 on the [-1, 1] scale = a quarter of the range).
        kernel_size: odd window size (>= 3).
        value_range: width of the images' intensity range (2 for [-1, 1], 255 for 8-bit); ``threshold`` is scaled by
            ``value_range / 2``.

    Returns:
        ``(N,)`` fraction of impulse pixels per image, in [0, 1].

    Raises:
        ValueError: images that are not 4D/5D, an even or too small ``kernel_size``, or a non-positive threshold.

    Example:
        >>> import torch
        >>> clean = torch.zeros(1, 1, 8, 8)
        >>> noisy = clean.clone(); noisy[0, 0, 2, 3] = 1.0; noisy[0, 0, 5, 5] = -1.0  # two impulses
        >>> impulse_noise_rate(torch.cat([clean, noisy])).tolist()
        [0.0, 0.03125]
        >>> edge = torch.zeros(1, 1, 8, 8); edge[..., 4:] = 1.0  # a sharp edge is not impulse noise
        >>> impulse_noise_rate(edge).item()
        0.0
    """
    if images.ndim not in (4, 5):
        raise ValueError(f"images must be (N, C, H, W) or (N, C, H, W, D), got shape {tuple(images.shape)}.")
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd integer >= 3, got {kernel_size}.")
    if threshold <= 0 or value_range <= 0:
        raise ValueError(f"threshold and value_range must be positive, got {threshold}, {value_range}.")
    x = images.float()
    if x.ndim == 5:  # every slice along the last axis as a 2D image
        n, c, h, w, d = x.shape
        x = x.permute(0, 4, 1, 2, 3).reshape(n, d * c, h, w)
    n, c, h, w = x.shape
    pad = kernel_size // 2
    padded = F.pad(x.reshape(n * c, 1, h, w), (pad, pad, pad, pad), mode="reflect")
    windows = F.unfold(padded, kernel_size)  # (N*C, k*k, H*W)
    median = windows.median(dim=1).values.reshape(n, c, h, w)
    impulses = (x - median).abs() > threshold * value_range / 2.0
    return impulses.float().reshape(n, -1).mean(dim=1)
