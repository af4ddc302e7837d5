"""Mean pairwise (MS-)SSIM inside a set (diversity) and between two sets (similarity)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import overload

import numpy as np
import torch
from monai.metrics import MultiScaleSSIMMetric, SSIMMetric

from .fid import _as_tensor

__all__ = ["intra_set_ssim", "cross_set_ssim"]

#: with ``num_pairs=None``, all pairs are used up to this many; larger sets use this many random pairs
MAX_ALL_PAIRS = 10_000
_WIN_SIZE = 11  # SSIM Gaussian window (MONAI default, Wang et al. 2004)
_MS_SCALES = 5  # MS-SSIM scales (MONAI default weights, Wang et al. 2003)
_BATCH = 256  # image pairs per SSIM call


def _check_images(images: torch.Tensor | np.ndarray, name: str, min_count: int) -> torch.Tensor:
    """Validate an (N, C, H, W) image set with at least ``min_count`` images."""
    images = _as_tensor(images, name)
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(images.shape)}.")
    if images.shape[0] < min_count:
        raise ValueError(f"{name} needs at least {min_count} images, got {images.shape[0]}.")
    return images


def _check_options(num_pairs: int | None, data_range: float, seed: int) -> None:
    if num_pairs is not None and (isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 1):
        raise ValueError(f"num_pairs must be a positive integer or None, got {num_pairs!r}.")
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}.")


def _make_metric(
    spatial_shape: Sequence[int], multiscale: bool, data_range: float
) -> SSIMMetric | MultiScaleSSIMMetric:
    """MONAI's (MS-)SSIM metric with per-pair output, after checking the images are large enough."""
    if multiscale:
        # MONAI's compute_ms_ssim requires size // (scales - 1)**2 > win - 1 along every axis (176 px by default)
        min_size = _WIN_SIZE * (_MS_SCALES - 1) ** 2
        if min(spatial_shape) < min_size:
            raise ValueError(
                f"MS-SSIM ({_MS_SCALES} scales, window {_WIN_SIZE}) needs images of at least {min_size} px per side, "
                f"got {tuple(spatial_shape)}; use multiscale=False for small images (e.g. 28-64 px)."
            )
        return MultiScaleSSIMMetric(spatial_dims=2, data_range=data_range, kernel_size=_WIN_SIZE, reduction="none")
    if min(spatial_shape) < _WIN_SIZE:
        raise ValueError(
            f"SSIM (window {_WIN_SIZE}) needs images of at least {_WIN_SIZE} px per side, got {tuple(spatial_shape)}."
        )
    return SSIMMetric(spatial_dims=2, data_range=data_range, win_size=_WIN_SIZE, reduction="none")


def _mean_ssim(
    set_a: torch.Tensor,
    set_b: torch.Tensor,
    idx_a: np.ndarray,
    idx_b: np.ndarray,
    metric: SSIMMetric | MultiScaleSSIMMetric,
) -> float:
    """Mean (MS-)SSIM of the pairs ``(set_a[idx_a[p]], set_b[idx_b[p]])``, in batches of ``_BATCH`` pairs."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(idx_a), _BATCH):
            a = set_a[torch.as_tensor(idx_a[start : start + _BATCH])]
            b = set_b[torch.as_tensor(idx_b[start : start + _BATCH])]
            scores = metric(a, b)
            assert isinstance(scores, torch.Tensor)  # reduction='none' returns one tensor
            total += float(scores.double().sum())
    metric.reset()
    return total / len(idx_a)


def _pairs_within(n: int, num_pairs: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``i < j`` within a set of ``n``: all of them, or ``num_pairs`` random distinct ones."""
    total = n * (n - 1) // 2
    limit = MAX_ALL_PAIRS if num_pairs is None else num_pairs
    if total <= limit:
        return np.triu_indices(n, k=1)
    if total <= 2_000_000:
        i, j = np.triu_indices(n, k=1)
        pick = np.sort(rng.choice(total, size=limit, replace=False))
        return i[pick], j[pick]
    # large sets: rejection sampling of distinct unordered pairs (limit << total here in practice)
    chosen: dict[tuple[int, int], None] = {}
    while len(chosen) < limit:
        draws = rng.integers(0, n, size=(2 * (limit - len(chosen)) + 16, 2))
        for a, b in draws:
            if a != b:
                chosen.setdefault((int(min(a, b)), int(max(a, b))), None)
                if len(chosen) == limit:
                    break
    pairs = np.asarray(list(chosen), dtype=np.int64)
    return pairs[:, 0], pairs[:, 1]


def _labels_list(labels: Sequence[Hashable] | torch.Tensor | np.ndarray, n: int) -> list[Hashable]:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1:
            raise ValueError(f"labels must be 1-D (one label per image), got shape {labels.shape}.")
        labels = labels.tolist()
    labels = list(labels)
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries but there are {n} images.")
    return labels


@overload
def intra_set_ssim(
    images: torch.Tensor | np.ndarray,
    num_pairs: int | None = ...,
    seed: int = ...,
    multiscale: bool = ...,
    data_range: float = ...,
    labels: None = ...,
) -> float: ...


@overload
def intra_set_ssim(
    images: torch.Tensor | np.ndarray,
    num_pairs: int | None = ...,
    seed: int = ...,
    multiscale: bool = ...,
    data_range: float = ...,
    *,
    labels: Sequence[Hashable] | torch.Tensor | np.ndarray,
) -> dict[Hashable, float]: ...


def intra_set_ssim(
    images: torch.Tensor | np.ndarray,
    num_pairs: int | None = None,
    seed: int = 0,
    multiscale: bool = False,
    data_range: float = 2.0,
    labels: Sequence[Hashable] | torch.Tensor | np.ndarray | None = None,
) -> float | dict[Hashable, float]:
    """Mean pairwise SSIM inside an image set — an intra-set diversity score (lower = more diverse).

    SSIM: Wang, Bovik, Sheikh & Simoncelli 2004, "Image quality assessment: from error visibility to structural
    similarity", IEEE TIP 13(4); MS-SSIM: Wang, Simoncelli & Bovik 2003, "Multiscale structural similarity for image
    quality assessment". Mean pairwise MS-SSIM as a diversity measure of generated samples follows Odena, Olah &
    Shlens 2017, "Conditional Image Synthesis with Auxiliary Classifier GANs" (https://arxiv.org/abs/1610.09585),
    where it is computed within each class. Values come from :class:`monai.metrics.SSIMMetric` /
    :class:`monai.metrics.MultiScaleSSIMMetric` (Gaussian window 11, sigma 1.5; MS-SSIM with 5 scales needs at least
    176 px per side).

    Pairs: with ``num_pairs=None``, every unordered pair ``i < j`` when there are at most ``MAX_ALL_PAIRS`` (10,000)
    of them, else ``MAX_ALL_PAIRS`` random distinct pairs; with ``num_pairs`` set, ``num_pairs`` random distinct
    pairs (all pairs when there are fewer). Random pairs are drawn from ``numpy.random.default_rng(seed)``.
    N identical images give 1; independent noise images give about 0.

    Args:
        images: (N, C, H, W) images in a range of width ``data_range`` (default ``[-1, 1]``).
        num_pairs: number of random pairs, or ``None`` (see above).
        seed: seed of the pair sampling.
        multiscale: use MS-SSIM instead of SSIM.
        data_range: value range of the images (2.0 for ``[-1, 1]``, 1.0 for ``[0, 1]``).
        labels: optional per-image class labels (length N); then the mean SSIM is computed within each class.

    Returns:
        the mean SSIM as a float; with ``labels``, a dict ``{class: mean SSIM}`` plus ``"mean"``, the unweighted mean
        over the classes.

    Raises:
        ValueError: on a wrong shape, fewer than 2 images (per class with ``labels``), NaN/inf, images too small for
            the (MS-)SSIM window, or bad ``num_pairs`` / ``data_range`` / ``labels``.

    Example:
        >>> import torch
        >>> img = torch.rand(1, 1, 32, 32) * 2 - 1
        >>> intra_set_ssim(img.repeat(4, 1, 1, 1))
        1.0
    """
    _check_options(num_pairs, data_range, seed)
    images = _check_images(images, "images", min_count=2)
    metric = _make_metric(images.shape[2:], multiscale, data_range)
    rng = np.random.default_rng(seed)
    if labels is None:
        idx_a, idx_b = _pairs_within(images.shape[0], num_pairs, rng)
        return _mean_ssim(images, images, idx_a, idx_b, metric)

    label_list = _labels_list(labels, images.shape[0])
    result: dict[Hashable, float] = {}
    try:
        classes = sorted(set(label_list))  # type: ignore[type-var]  # not all Hashables sort: mixed types below
    except TypeError:  # mixed label types
        classes = sorted(set(label_list), key=str)
    for cls in classes:
        members = np.asarray([i for i, lab in enumerate(label_list) if lab == cls], dtype=np.int64)
        if len(members) < 2:
            raise ValueError(f"class {cls!r} has {len(members)} image; intra-class SSIM needs at least 2 per class.")
        idx_a, idx_b = _pairs_within(len(members), num_pairs, rng)
        result[cls] = _mean_ssim(images, images, members[idx_a], members[idx_b], metric)
    result["mean"] = float(np.mean(list(result.values())))
    return result


def cross_set_ssim(
    set_a: torch.Tensor | np.ndarray,
    set_b: torch.Tensor | np.ndarray,
    num_pairs: int = 1000,
    seed: int = 0,
    multiscale: bool = False,
    data_range: float = 2.0,
) -> float:
    """Mean SSIM over random pairs with one image from each set — how similar two image sets are.

    Used for a table like "real-train vs real-test, synthetic vs real-train, synthetic vs real-test, each vs an
    out-of-distribution reference set": synthetic images should be about as similar to real ones as real sets are to
    each other, and clearly more than to the reference set. SSIM: Wang et al. 2004 (IEEE TIP 13(4)); MS-SSIM: Wang,
    Simoncelli & Bovik 2003; computed with :class:`monai.metrics.SSIMMetric` /
    :class:`monai.metrics.MultiScaleSSIMMetric`.

    Pairs ``(a, b)`` are ``num_pairs`` distinct index pairs drawn uniformly from ``len(set_a) x len(set_b)``
    (all of them when there are fewer) with ``numpy.random.default_rng(seed)``. Passing one set twice compares
    it with itself, including (rare) pairs of an image with itself.

    Args:
        set_a: (N_a, C, H, W) images.
        set_b: (N_b, C, H, W) images of the same C, H, W.
        num_pairs: number of random pairs.
        seed: seed of the pair sampling.
        multiscale: use MS-SSIM instead of SSIM.
        data_range: value range of the images (2.0 for ``[-1, 1]``).

    Returns:
        the mean SSIM as a float.

    Raises:
        ValueError: on wrong or different image shapes, empty sets, NaN/inf, images too small for the window, or
            bad ``num_pairs`` / ``data_range``.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> a = torch.rand(4, 1, 32, 32, generator=g) * 2 - 1
        >>> cross_set_ssim(a, a.clone(), num_pairs=16) > cross_set_ssim(a, -a, num_pairs=16)
        True
    """
    if num_pairs is None:
        raise ValueError("num_pairs must be a positive integer for cross_set_ssim, got None.")
    _check_options(num_pairs, data_range, seed)
    set_a = _check_images(set_a, "set_a", min_count=1)
    set_b = _check_images(set_b, "set_b", min_count=1)
    if set_a.shape[1:] != set_b.shape[1:]:
        raise ValueError(
            f"set_a and set_b must have the same (C, H, W), got {tuple(set_a.shape[1:])} and {tuple(set_b.shape[1:])}."
        )
    if set_a.dtype != set_b.dtype:
        set_a, set_b = set_a.double(), set_b.double()
    set_b = set_b.to(set_a.device)
    metric = _make_metric(set_a.shape[2:], multiscale, data_range)
    n_a, n_b = set_a.shape[0], set_b.shape[0]
    total = n_a * n_b
    if total <= num_pairs:
        flat = np.arange(total)
    else:
        flat = np.sort(np.random.default_rng(seed).choice(total, size=num_pairs, replace=False))
    return _mean_ssim(set_a, set_b, flat // n_b, flat % n_b, metric)
