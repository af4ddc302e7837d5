"""Fréchet distance between two sets of feature vectors (the "FID" of Heusel et al. 2017)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from monai.metrics import FIDMetric
from monai.metrics.fid import compute_frechet_distance

__all__ = ["frechet_distance", "gaussian_frechet_distance"]


def _as_tensor(data: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """``data`` as a floating point tensor (float64 stays float64, anything else becomes float32).

    Raises:
        ValueError: when ``data`` is not a tensor/array, is empty, or holds NaN or infinite values.
    """
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data))
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(data).__name__}.")
    data = data.detach()
    if data.dtype != torch.float64:
        data = data.float()
    if data.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(data.shape)}).")
    if not torch.isfinite(data).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return data


def _check_features(
    real_features: torch.Tensor | np.ndarray,
    fake_features: torch.Tensor | np.ndarray,
    min_samples: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two (N, D) feature sets with the same D and at least ``min_samples`` rows each.

    Returns:
        both sets as floating point tensors of one dtype (float64 when either is float64).

    Raises:
        ValueError: on a wrong number of dimensions, different feature sizes, too few samples, NaN/inf.
    """
    real = _as_tensor(real_features, "real_features")
    fake = _as_tensor(fake_features, "fake_features")
    for name, feats in (("real_features", real), ("fake_features", fake)):
        if feats.ndim != 2:
            raise ValueError(f"{name} must have shape (N, D), got {tuple(feats.shape)}.")
        if feats.shape[0] < min_samples:
            raise ValueError(f"{name} needs at least {min_samples} samples, got {feats.shape[0]}.")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real_features and fake_features must have the same feature size, got {real.shape[1]} and {fake.shape[1]}."
        )
    if real.dtype != fake.dtype:
        real, fake = real.double(), fake.double()
    return real, fake


def _to_double(value: torch.Tensor | np.ndarray | float) -> torch.Tensor:
    """``value`` (tensor, array or number) as a float64 CPU tensor."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double()
    return torch.as_tensor(np.asarray(value, dtype=np.float64))


def _frechet(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """MONAI's closed form; silences SciPy's deprecation warning for ``sqrtm(disp=...)`` used inside MONAI.

    For D = 1, SciPy's ``sqrtm(..., disp=False)`` returns a bare array that MONAI cannot unpack, so the scalar
    formula ``(m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2)`` is evaluated directly.
    """
    if mu1.numel() == 1:
        s1, s2 = float(sigma1.reshape(())), float(sigma2.reshape(()))
        if s1 < 0 or s2 < 0:
            raise ValueError(f"variances must be >= 0, got {s1} and {s2}.")
        value = (float(mu1.reshape(())) - float(mu2.reshape(()))) ** 2 + s1 + s2 - 2.0 * (s1 * s2) ** 0.5
        return max(0.0, value)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*`disp` argument is deprecated.*", category=DeprecationWarning)
        value = compute_frechet_distance(mu1, sigma1, mu2, sigma2)
    # the exact value is >= 0; round-off (e.g. identical sets) can give tiny negative numbers
    return max(0.0, float(value))


def gaussian_frechet_distance(
    mu1: torch.Tensor | np.ndarray | float,
    sigma1: torch.Tensor | np.ndarray | float,
    mu2: torch.Tensor | np.ndarray | float,
    sigma2: torch.Tensor | np.ndarray | float,
) -> float:
    """Fréchet (2-Wasserstein squared) distance between N(mu1, sigma1) and N(mu2, sigma2), in closed form.

    ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))`` (Dowson & Landau 1982), the quantity that
    the Fréchet Inception Distance evaluates on fitted Gaussians (Heusel et al. 2017, "GANs trained by a two
    time-scale update rule converge to a local Nash equilibrium", https://arxiv.org/abs/1706.08500). Computed with
    :func:`monai.metrics.fid.compute_frechet_distance` (for D = 1 with the scalar formula
    ``(m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2)``).

    Args:
        mu1: mean of the first Gaussian, shape (D,) (a scalar for D = 1).
        sigma1: covariance of the first Gaussian, shape (D, D) (a scalar variance for D = 1).
        mu2: mean of the second Gaussian, shape (D,).
        sigma2: covariance of the second Gaussian, shape (D, D).

    Returns:
        the distance as a Python float (>= 0).

    Raises:
        ValueError: on inconsistent shapes, non-finite values or a non-symmetric covariance.

    Example:
        >>> round(gaussian_frechet_distance(0.0, 1.0, 2.0, 4.0), 6)  # (0-2)^2 + 1 + 4 - 2*sqrt(1*4)
        5.0
    """
    mus = [_to_double(mu1).reshape(-1), _to_double(mu2).reshape(-1)]
    sigmas = []
    for name, sigma, mu in (("sigma1", sigma1, mus[0]), ("sigma2", sigma2, mus[1])):
        s = _to_double(sigma)
        if s.ndim < 2 and s.numel() == 1:
            s = s.reshape(1, 1)
        if s.ndim != 2 or s.shape != (mu.numel(), mu.numel()):
            raise ValueError(
                f"{name} must have shape ({mu.numel()}, {mu.numel()}) to match its mean, got {tuple(s.shape)}."
            )
        if not torch.allclose(s, s.T, rtol=1e-5, atol=1e-8):
            raise ValueError(f"{name} must be a symmetric covariance matrix.")
        sigmas.append(s)
    if mus[0].numel() != mus[1].numel():
        raise ValueError(f"mu1 and mu2 must have the same size, got {mus[0].numel()} and {mus[1].numel()}.")
    for name, t in (("mu1", mus[0]), ("mu2", mus[1]), ("sigma1", sigmas[0]), ("sigma2", sigmas[1])):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
    return _frechet(mus[0], sigmas[0], mus[1], sigmas[1])


def frechet_distance(real_features: torch.Tensor | np.ndarray, fake_features: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception's).

    Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash equilibrium"
    (https://arxiv.org/abs/1706.08500). The value is computed by :class:`monai.metrics.FIDMetric`
    (``FIDMetric()(y_pred=fake, y=real)``: sample means and unbiased covariances, then the closed form of
    :func:`gaussian_frechet_distance`); for 1-D features, which MONAI's covariance helper squeezes to a scalar, the
    same closed form is applied to the fitted mean and variance directly. The estimate is biased upwards for small
    N (use thousands of samples when D is large), and round-off below zero is clipped to 0.

    Args:
        real_features: (N_real, D) features of real images (tensor or array).
        fake_features: (N_fake, D) features of generated images.

    Returns:
        the Fréchet distance as a Python float.

    Raises:
        ValueError: when a set is not 2-D, has fewer than 2 samples, the feature sizes differ, or values are NaN/inf.

    Example:
        >>> import torch
        >>> x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
        >>> frechet_distance(x, x) < 1e-6
        True
        >>> round(frechet_distance(x, x + 1.0), 4)  # only the means differ: 3 dims x 1^2
        3.0
    """
    real, fake = _check_features(real_features, fake_features, min_samples=2)
    real, fake = real.double(), fake.double()
    if real.shape[1] == 1:
        return _frechet(real.mean(0), torch.cov(real.T).reshape(1, 1), fake.mean(0), torch.cov(fake.T).reshape(1, 1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*`disp` argument is deprecated.*", category=DeprecationWarning)
        value = FIDMetric()(fake, real)
    return max(0.0, float(value))
