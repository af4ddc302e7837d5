from __future__ import annotations

import numpy as np
import pytest
import torch

from medsyn_monai.metrics.fid import frechet_distance, gaussian_frechet_distance


def _closed_form(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Independent reference: Tr((S1 S2)^1/2) as the sum of square roots of the (real, >0) eigenvalues of S1 S2."""
    eig = np.linalg.eigvals(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * np.sum(np.sqrt(np.clip(eig, 0, None))))


def _random_spd(dim: int, generator: torch.Generator) -> torch.Tensor:
    a = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    return a @ a.T / dim + 0.5 * torch.eye(dim, dtype=torch.float64)


def test_gaussian_frechet_distance_1d_hand_computed():
    # (m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2)
    assert gaussian_frechet_distance(0.0, 1.0, 2.0, 4.0) == pytest.approx(4 + 1 + 4 - 2 * 2)
    assert gaussian_frechet_distance(1.5, 9.0, -0.5, 1.0) == pytest.approx(4 + 9 + 1 - 2 * 3)
    assert gaussian_frechet_distance(np.array([3.0]), np.array([[2.0]]), np.array([3.0]), np.array([[2.0]])) == 0.0


def test_gaussian_frechet_distance_diagonal_and_general():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))  # 5 + (4 + 1 + 0)
    assert expected == pytest.approx(10.0)
    assert gaussian_frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(10.0, abs=1e-8)
    g = torch.Generator().manual_seed(1)
    s1, s2 = _random_spd(5, g), _random_spd(5, g)
    m1, m2 = torch.randn(5, generator=g, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    ref = _closed_form(m1.numpy(), s1.numpy(), m2.numpy(), s2.numpy())
    assert gaussian_frechet_distance(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-6)
    # symmetric in its two Gaussians
    assert gaussian_frechet_distance(m2, s2, m1, s1) == pytest.approx(ref, rel=1e-6)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert abs(frechet_distance(x, x)) < 1e-3
    assert abs(frechet_distance(x.numpy(), x.numpy())) < 1e-3


def test_frechet_distance_matches_closed_form_for_gaussian_samples():
    g = torch.Generator().manual_seed(3)
    dim, n = 8, 5000
    s1, s2 = _random_spd(dim, g), _random_spd(dim, g)
    mu1 = torch.zeros(dim, dtype=torch.float64)
    mu2 = torch.full((dim,), 0.5, dtype=torch.float64)
    x = mu1 + torch.randn(n, dim, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s1).T
    y = mu2 + torch.randn(n, dim, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s2).T
    expected = _closed_form(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())
    assert expected > 1.0
    assert frechet_distance(x, y) == pytest.approx(expected, rel=0.05)
    assert frechet_distance(x.float(), y.float()) == pytest.approx(expected, rel=0.05)


def test_frechet_distance_1d_features():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 1, generator=g, dtype=torch.float64)
    y = 2.0 + 3.0 * torch.randn(4000, 1, generator=g, dtype=torch.float64)
    # exact value on the fitted statistics
    m1, m2, v1, v2 = x.mean().item(), y.mean().item(), x.var().item(), y.var().item()
    assert frechet_distance(x, y) == pytest.approx((m1 - m2) ** 2 + v1 + v2 - 2 * np.sqrt(v1 * v2), rel=1e-9)
    assert frechet_distance(x, y) == pytest.approx(4 + 1 + 9 - 2 * 3, rel=0.1)


@pytest.mark.parametrize(
    "real, fake, match",
    [
        (torch.randn(1, 4), torch.randn(10, 4), "at least 2"),
        (torch.randn(10, 4), torch.randn(1, 4), "at least 2"),
        (torch.randn(10, 4, 2), torch.randn(10, 4, 2), r"shape \(N, D\)"),
        (torch.randn(10, 4), torch.randn(10, 5), "same feature size"),
        (torch.full((10, 4), float("nan")), torch.randn(10, 4), "NaN"),
        ([[1.0, 2.0]], torch.randn(10, 2), "torch.Tensor or numpy.ndarray"),
    ],
)
def test_frechet_distance_bad_inputs(real, fake, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(real, fake)


def test_gaussian_frechet_distance_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        gaussian_frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="symmetric"):
        gaussian_frechet_distance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="same size"):
        gaussian_frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        gaussian_frechet_distance(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match=">= 0"):
        gaussian_frechet_distance(0.0, -1.0, 0.0, 1.0)
