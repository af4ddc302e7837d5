"""Nearest-neighbour distances between image sets: the measure of a memorisation audit and of near-duplicate search."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

__all__ = ["NearestNeighbours", "feature_cosine_distance", "aligned_correlation_distance"]


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _check(query: torch.Tensor, reference: torch.Tensor, ndim: int, what: str) -> None:
    if query.ndim != ndim or reference.ndim != ndim:
        raise ValueError(f"{what} must be {ndim}-D, got shapes {tuple(query.shape)} and {tuple(reference.shape)}.")
    if query.shape[1:] != reference.shape[1:]:
        raise ValueError(f"{what}: query {tuple(query.shape)} and reference {tuple(reference.shape)} do not match.")
    if len(reference) == 0:
        raise ValueError(f"{what}: the reference set is empty.")


def feature_cosine_distance(
    query: torch.Tensor, reference: torch.Tensor, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query feature vector, ``1 - cosine similarity`` to its nearest reference vector, and that index.

    Args:
        query: ``(N, D)`` features.
        reference: ``(M, D)`` features.
        chunk: query rows per matrix product (memory).

    Returns:
        ``(distances (N,), indices (N,))``; distances lie in [0, 2].

    Example:
        >>> d, i = feature_cosine_distance(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 1.0], [3, 0]]))
        >>> d.tolist(), i.tolist()
        ([0.0, 0.0], [1, 0])
    """
    _check(query, reference, 2, "features")
    ref = F.normalize(reference.double(), dim=1)
    out_d, out_i = [], []
    for s in _chunks(len(query), chunk):
        sim = F.normalize(query[s].double(), dim=1) @ ref.T
        best, idx = sim.max(dim=1)
        out_d.append((1.0 - best).clamp_min(0.0))
        out_i.append(idx)
    if not out_d:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    return torch.cat(out_d), torch.cat(out_i)


def _standardise(x: torch.Tensor) -> torch.Tensor:
    """Flatten, subtract the mean and scale to unit norm (a constant image becomes all zeros)."""
    x = x.reshape(len(x), -1).double()
    x = x - x.mean(dim=1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def aligned_correlation_distance(
    query: torch.Tensor,
    reference: torch.Tensor,
    max_shift: int = 2,
    flips: bool = True,
    chunk: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query image, ``1 - normalised cross-correlation`` to its nearest reference image, maximised over
    shifts of up to ``max_shift`` pixels and (with ``flips``) left-right and up-down flips of the query, and that
    reference's index.

    Normalised correlation is the Pearson correlation of the pixels: it ignores a change of brightness and contrast
    (an affine intensity change), so a copy whose intensities were rescaled is still at distance ~0. Images are
    compared on the central region that every shift keeps (``max_shift`` pixels cropped from each border).

    Args:
        query: ``(N, C, *spatial)`` images (2D or 3D).
        reference: ``(M, C, *spatial)`` images of the same shape.
        max_shift: largest shift along each spatial axis, in pixels (0: none).
        flips: also compare the query flipped along each spatial axis.
        chunk: query images per matrix product (memory).

    Returns:
        ``(distances (N,), indices (N,))``; distances lie in [0, 2].

    Example:
        >>> ref = torch.rand(3, 1, 12, 12)
        >>> d, i = aligned_correlation_distance(torch.roll(ref[1:2].flip(-1), 1, dims=-2) * 3 + 1, ref)
        >>> i.item(), round(d.item(), 6)
        (1, 0.0)
    """
    if query.ndim not in (4, 5):
        raise ValueError(f"images must be (N, C, H, W) or (N, C, D, H, W), got shape {tuple(query.shape)}.")
    _check(query, reference, query.ndim, "images")
    spatial = query.shape[2:]
    if max_shift < 0 or any(2 * max_shift >= s for s in spatial):
        raise ValueError(f"max_shift must be >= 0 and leave pixels of images {tuple(spatial)}, got {max_shift}.")
    m = max_shift
    centre = tuple(slice(m, s - m) for s in spatial)
    ref = _standardise(reference[(slice(None), slice(None)) + centre])
    axes = list(range(2, query.ndim))
    flip_sets: list[tuple[int, ...]] = [()]
    if flips:
        flip_sets += [(a,) for a in axes]
    shifts = list(itertools.product(range(-m, m + 1), repeat=len(spatial)))
    out_d, out_i = [], []
    for s in _chunks(len(query), chunk):
        best = torch.full((s.stop - s.start,), -2.0, dtype=torch.float64)
        best_i = torch.zeros(s.stop - s.start, dtype=torch.long)
        for flip in flip_sets:
            q = query[s].flip(flip) if flip else query[s]
            for shift in shifts:
                window = tuple(slice(m + o, n - m + o) for o, n in zip(shift, spatial, strict=True))
                sim = _standardise(q[(slice(None), slice(None)) + window]) @ ref.T
                value, idx = sim.max(dim=1)
                better = value > best
                best = torch.where(better, value, best)
                best_i = torch.where(better, idx, best_i)
        out_d.append((1.0 - best).clamp_min(0.0))
        out_i.append(best_i)
    if not out_d:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    return torch.cat(out_d), torch.cat(out_i)


class NearestNeighbours:
    """Nearest reference neighbour of each query under two complementary measures (Carlini et al. 2023, "Extracting
    training data from diffusion models"; Somepalli et al. 2023, "Diffusion art or digital forgery?"): feature
    cosine distance (semantic copies) and aligned pixel correlation distance (near-exact copies, after shifts,
    flips and intensity changes).

    Args:
        max_shift: pixel shifts searched by the pixel measure.
        flips: search flips too.

    Example:
        >>> nn_ = NearestNeighbours(max_shift=1)
        >>> images = torch.rand(4, 1, 8, 8)
        >>> result = nn_(images[:2], images, torch.rand(2, 5), torch.rand(4, 5))
        >>> result["pixel_index"].tolist(), [round(v, 6) for v in result["pixel_distance"].tolist()]
        ([0, 1], [0.0, 0.0])
    """

    def __init__(self, max_shift: int = 2, flips: bool = True) -> None:
        self.max_shift = int(max_shift)
        self.flips = bool(flips)

    def __call__(
        self,
        query_images: torch.Tensor,
        reference_images: torch.Tensor,
        query_features: torch.Tensor | None = None,
        reference_features: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``{"pixel_distance", "pixel_index"[, "feature_distance", "feature_index"]}`` of every query."""
        d, i = aligned_correlation_distance(query_images, reference_images, self.max_shift, self.flips)
        result = {"pixel_distance": d, "pixel_index": i}
        if query_features is not None and reference_features is not None:
            fd, fi = feature_cosine_distance(query_features, reference_features)
            result.update(feature_distance=fd, feature_index=fi)
        return result
