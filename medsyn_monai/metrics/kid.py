"""Kernel Inception Distance: unbiased polynomial-kernel MMD² between two feature sets (Bińkowski et al. 2018)."""

from __future__ import annotations

import numpy as np
import torch

from .fid import _check_features

__all__ = ["KernelInceptionDistance"]


class KernelInceptionDistance:
    """Kernel Inception Distance (KID), averaged over random subsets.

    Bińkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD GANs" (https://arxiv.org/abs/1801.01401).
    For each of ``num_subsets`` subsets, ``m`` real and ``m`` fake features are drawn without replacement and the
    unbiased estimator of the squared maximum mean discrepancy is computed with the cubic polynomial kernel
    ``k(x, y) = (x . y / d + 1) ** 3`` (``d`` the feature size)::

        MMD² = sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] / (m (m-1)) - 2 sum_{i, j} k(x_i, y_j) / m²

    Unlike FID the estimator is unbiased, so it can be slightly negative for two samples of one distribution.
    Computations use float64. The subsets are drawn from a ``torch.Generator`` seeded with ``seed`` at every call,
    so repeated calls on the same inputs give the same result.

    Args:
        num_subsets: number of random subsets to average over.
        subset_size: features per set in each subset; capped at the smaller of the two set sizes.
        seed: seed of the subset sampling.

    Raises:
        ValueError: when ``num_subsets`` or ``subset_size`` is not a positive integer (``subset_size`` >= 2).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> real, fake = torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g) + 2.0
        >>> kid = KernelInceptionDistance(num_subsets=10, subset_size=100, seed=0)
        >>> mean, std = kid(real, fake)
        >>> mean > 1.0
        True
        >>> kid(real, fake) == (mean, std)
        True
    """

    def __init__(self, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> None:
        if isinstance(num_subsets, bool) or not isinstance(num_subsets, int) or num_subsets < 1:
            raise ValueError(f"num_subsets must be a positive integer, got {num_subsets!r}.")
        if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 2:
            raise ValueError(f"subset_size must be an integer >= 2, got {subset_size!r}.")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}.")
        self.num_subsets = num_subsets
        self.subset_size = subset_size
        self.seed = seed

    @staticmethod
    def polynomial_mmd2(real: torch.Tensor, fake: torch.Tensor) -> float:
        """Unbiased MMD² with the kernel ``(x . y / d + 1) ** 3`` between two (m, d) sets of equal size m >= 2.

        Args:
            real: (m, d) features.
            fake: (m, d) features.

        Returns:
            the unbiased MMD² estimate (may be slightly negative).
        """
        m, d = real.shape
        real, fake = real.double(), fake.double()
        k_xx = (real @ real.T / d + 1.0) ** 3
        k_yy = (fake @ fake.T / d + 1.0) ** 3
        k_xy = (real @ fake.T / d + 1.0) ** 3
        sum_xx = k_xx.sum() - torch.diagonal(k_xx).sum()
        sum_yy = k_yy.sum() - torch.diagonal(k_yy).sum()
        mmd2 = (sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m)
        return float(mmd2)

    def __call__(
        self, real_features: torch.Tensor | np.ndarray, fake_features: torch.Tensor | np.ndarray
    ) -> tuple[float, float]:
        """KID between two feature sets.

        Args:
            real_features: (N_real, D) features of real images (tensor or array), N_real >= 2.
            fake_features: (N_fake, D) features of generated images, N_fake >= 2.

        Returns:
            ``(mean, std)`` of the MMD² estimates over the subsets (population standard deviation).

        Raises:
            ValueError: when a set is not 2-D, has fewer than 2 samples, the feature sizes differ, or has NaN/inf.
        """
        real, fake = _check_features(real_features, fake_features, min_samples=2)
        m = min(self.subset_size, real.shape[0], fake.shape[0])
        generator = torch.Generator().manual_seed(self.seed)
        values = np.empty(self.num_subsets, dtype=np.float64)
        for s in range(self.num_subsets):
            idx_real = torch.randperm(real.shape[0], generator=generator)[:m].to(real.device)
            idx_fake = torch.randperm(fake.shape[0], generator=generator)[:m].to(fake.device)
            values[s] = self.polynomial_mmd2(real[idx_real], fake[idx_fake])
        return float(values.mean()), float(values.std())
