"""k-NN manifold precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020)."""

from __future__ import annotations

import numpy as np
import torch

from .fid import _check_features

__all__ = ["PrecisionRecallDensityCoverage"]


class PrecisionRecallDensityCoverage:
    """Fidelity and diversity of generated samples from k-nearest-neighbour balls in feature space.

    Each real (fake) feature gets a ball whose radius is the distance to its ``nearest_k``-th nearest neighbour in
    its own set (itself excluded); the union of the balls approximates that set's manifold.

    - ``precision``: fraction of fake samples inside the real manifold (fidelity);
    - ``recall``: fraction of real samples inside the fake manifold (diversity) — both from Kynkäänniemi, Karras,
      Laine, Lehtinen & Aila 2019, "Improved Precision and Recall Metric for Assessing Generative Models"
      (https://arxiv.org/abs/1904.06991);
    - ``density``: ``1/(k N_fake) sum_j sum_i 1[fake_j in ball(real_i)]`` — how many real balls contain each fake
      sample on average, ~1 for matching distributions, can exceed 1;
    - ``coverage``: fraction of real samples whose ball contains at least one fake sample — both from Naeem, Oh,
      Uh, Choi & Yoo 2020, "Reliable Fidelity and Diversity Metrics for Generative Models"
      (https://arxiv.org/abs/2002.09797).

    "Inside" is a strict ``<`` as in the authors' reference code. Distances are computed with :func:`torch.cdist`
    ``chunk_size`` rows at a time, so only (``chunk_size`` x N) distance blocks are held in memory (10k x 10k
    features fit easily). Computations run in float64 if either input is float64, else in float32; the result is
    deterministic (no sampling).

    Args:
        nearest_k: the k of the k-NN radii; each set needs more than ``nearest_k`` samples.
        chunk_size: rows of each distance block.

    Raises:
        ValueError: when ``nearest_k`` or ``chunk_size`` is not a positive integer.

    Example:
        >>> import torch
        >>> x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
        >>> PrecisionRecallDensityCoverage(nearest_k=3)(x, x)
        {'precision': 1.0, 'recall': 1.0, 'density': 1.0, 'coverage': 1.0}
    """

    def __init__(self, nearest_k: int = 5, chunk_size: int = 1024) -> None:
        if isinstance(nearest_k, bool) or not isinstance(nearest_k, int) or nearest_k < 1:
            raise ValueError(f"nearest_k must be a positive integer, got {nearest_k!r}.")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
        self.nearest_k = nearest_k
        self.chunk_size = chunk_size

    def knn_radii(self, features: torch.Tensor) -> torch.Tensor:
        """Distance of every row of ``features`` (N, D) to its ``nearest_k``-th nearest other row, shape (N,)."""
        radii = []
        for start in range(0, features.shape[0], self.chunk_size):
            dist = torch.cdist(features[start : start + self.chunk_size], features)
            # the smallest distance is the point itself (0), so the k-th neighbour is the (k+1)-th smallest
            radii.append(torch.topk(dist, self.nearest_k + 1, dim=1, largest=False).values[:, -1])
        return torch.cat(radii)

    def __call__(
        self, real_features: torch.Tensor | np.ndarray, fake_features: torch.Tensor | np.ndarray
    ) -> dict[str, float]:
        """Precision, recall, density and coverage of ``fake_features`` with respect to ``real_features``.

        Args:
            real_features: (N_real, D) features of real images (tensor or array).
            fake_features: (N_fake, D) features of generated images.

        Returns:
            ``{"precision", "recall", "density", "coverage"}`` as Python floats.

        Raises:
            ValueError: when a set is not 2-D, has ``nearest_k`` samples or fewer, the feature sizes differ, or has
                NaN/inf values.
        """
        real, fake = _check_features(real_features, fake_features, min_samples=self.nearest_k + 1)
        fake = fake.to(real.device)
        with torch.no_grad():
            real_radii = self.knn_radii(real)
            fake_radii = self.knn_radii(fake)
            fake_in_real = torch.zeros(fake.shape[0], dtype=torch.bool, device=real.device)
            real_balls_per_fake = torch.zeros(fake.shape[0], dtype=torch.float64, device=real.device)
            real_in_fake = []
            real_covered = []
            for start in range(0, real.shape[0], self.chunk_size):
                dist = torch.cdist(real[start : start + self.chunk_size], fake)  # (chunk, N_fake)
                inside_real_ball = dist < real_radii[start : start + self.chunk_size, None]
                fake_in_real |= inside_real_ball.any(dim=0)
                real_balls_per_fake += inside_real_ball.sum(dim=0, dtype=torch.float64)
                real_in_fake.append((dist < fake_radii[None, :]).any(dim=1))
                real_covered.append(inside_real_ball.any(dim=1))
        return {
            "precision": float(fake_in_real.double().mean()),
            "recall": float(torch.cat(real_in_fake).double().mean()),
            "density": float(real_balls_per_fake.mean() / self.nearest_k),
            "coverage": float(torch.cat(real_covered).double().mean()),
        }
