from __future__ import annotations

import numpy as np
import pytest
import torch

from medsyn_monai.metrics.kid import KernelInceptionDistance
from tests.metrics._helpers import check_feature_set_validation


def _brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (a.b / d + 1)^3, written as explicit loops."""
    m, d = x.shape

    def k(a, b):
        return (float(a @ b) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_polynomial_mmd2_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g) + 0.5
    expected = _brute_force_mmd2(x.double().numpy(), y.double().numpy())
    assert KernelInceptionDistance.polynomial_mmd2(x, y) == pytest.approx(expected, rel=1e-10)


def test_kid_same_distribution_is_about_zero():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g)
    mean, std = KernelInceptionDistance(num_subsets=10, subset_size=300, seed=0)(real, fake)
    assert std > 0
    assert abs(mean) < 3 * std or abs(mean) < 1e-3


def test_kid_shifted_distribution_is_clearly_positive():
    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g) + 1.0
    mean, std = KernelInceptionDistance(num_subsets=10, subset_size=300, seed=0)(real, fake)
    same_mean, _ = KernelInceptionDistance(num_subsets=10, subset_size=300, seed=0)(real, real[torch.randperm(600)])
    assert mean > 0.1
    assert mean > 10 * std
    assert mean > 100 * abs(same_mean)


def test_kid_is_reproducible_with_a_seed_and_accepts_numpy():
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g) + 0.2
    kid = KernelInceptionDistance(num_subsets=5, subset_size=100, seed=7)
    first = kid(real, fake)
    assert kid(real, fake) == first
    assert KernelInceptionDistance(num_subsets=5, subset_size=100, seed=7)(real.numpy(), fake.numpy()) == first
    assert KernelInceptionDistance(num_subsets=5, subset_size=100, seed=8)(real, fake) != first


def test_kid_subset_size_is_capped_at_the_smaller_set():
    g = torch.Generator().manual_seed(4)
    real, fake = torch.randn(30, 4, generator=g), torch.randn(30, 4, generator=g) + 0.3
    # default subset_size 1000 > 30: every subset is the whole of both sets, so all estimates are equal
    mean, std = KernelInceptionDistance(num_subsets=4)(real, fake)
    assert std < 1e-9
    assert mean == pytest.approx(KernelInceptionDistance.polynomial_mmd2(real, fake), rel=1e-9)
    # unequal set sizes work (subsets of the smaller size, 20)
    mean2, std2 = KernelInceptionDistance(num_subsets=4)(real, fake[:20])
    assert np.isfinite(mean2) and std2 > 0


def test_kid_bad_arguments():
    with pytest.raises(ValueError, match="num_subsets"):
        KernelInceptionDistance(num_subsets=0)
    with pytest.raises(ValueError, match="subset_size"):
        KernelInceptionDistance(subset_size=1)
    with pytest.raises(ValueError, match="seed"):
        KernelInceptionDistance(seed=1.5)
    check_feature_set_validation(KernelInceptionDistance(num_subsets=2), min_samples=2)
