"""Statistical comparison of real and synthetic intensity histograms and class frequencies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import chi2_contingency

from medsyn_monai.utils.enums import HistogramUnit

from .fid import _as_tensor

__all__ = ["kl_divergence", "js_divergence", "intensity_histogram_test", "class_frequency_test"]


def _as_distribution(values: torch.Tensor | np.ndarray | Sequence[float], name: str) -> np.ndarray:
    """Non-negative 1-D counts or probabilities as a float64 array with a positive sum."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D histogram, got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    if (arr < 0).any():
        raise ValueError(f"{name} must be non-negative.")
    if arr.sum() <= 0:
        raise ValueError(f"{name} sums to zero.")
    return arr


def kl_divergence(
    p: torch.Tensor | np.ndarray | Sequence[float], q: torch.Tensor | np.ndarray | Sequence[float], eps: float = 1e-10
) -> float:
    """Kullback-Leibler divergence ``KL(p || q) = sum_i p_i log(p_i / q_i)`` in nats.

    Kullback & Leibler 1951, "On Information and Sufficiency", Ann. Math. Statist. 22(1). Both inputs (counts or
    probabilities) are normalised to sum 1, then smoothed as ``(x + eps) / (1 + n eps)`` (n the number of bins) so
    that empty bins of ``q`` give a large but finite value instead of infinity. Identical inputs give exactly 0.

    Args:
        p: reference histogram (e.g. real), non-negative, 1-D.
        q: compared histogram (e.g. synthetic), same length.
        eps: additive smoothing of the normalised histograms (>= 0).

    Returns:
        the divergence as a float (>= 0).

    Raises:
        ValueError: on different lengths, negative / NaN values, all-zero inputs or a negative ``eps``.

    Example:
        >>> kl_divergence([1, 1], [2, 2])
        0.0
        >>> round(kl_divergence([1, 0], [1, 1], eps=0), 4)  # log 2
        0.6931
    """
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}.")
    p_arr, q_arr = _as_distribution(p, "p"), _as_distribution(q, "q")
    if p_arr.shape != q_arr.shape:
        raise ValueError(f"p and q must have the same number of bins, got {p_arr.size} and {q_arr.size}.")
    n = p_arr.size
    p_arr = (p_arr / p_arr.sum() + eps) / (1.0 + n * eps)
    q_arr = (q_arr / q_arr.sum() + eps) / (1.0 + n * eps)
    support = p_arr > 0
    if (q_arr[support] == 0).any():
        return float("inf")
    return max(0.0, float(np.sum(p_arr[support] * np.log(p_arr[support] / q_arr[support]))))


def js_divergence(
    p: torch.Tensor | np.ndarray | Sequence[float], q: torch.Tensor | np.ndarray | Sequence[float]
) -> float:
    """Jensen-Shannon divergence ``0.5 KL(p || m) + 0.5 KL(q || m)``, ``m = (p + q) / 2``, in nats (<= log 2).

    Lin 1991, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 37(1). Symmetric, finite
    without smoothing; inputs are normalised to sum 1.

    Args:
        p: first histogram (counts or probabilities), 1-D, non-negative.
        q: second histogram, same length.

    Returns:
        the divergence as a float in ``[0, log 2]``.

    Raises:
        ValueError: on different lengths, negative / NaN values or all-zero inputs.

    Example:
        >>> round(js_divergence([1, 0], [0, 1]), 4)  # log 2
        0.6931
    """
    p_arr, q_arr = _as_distribution(p, "p"), _as_distribution(q, "q")
    if p_arr.shape != q_arr.shape:
        raise ValueError(f"p and q must have the same number of bins, got {p_arr.size} and {q_arr.size}.")
    p_arr, q_arr = p_arr / p_arr.sum(), q_arr / q_arr.sum()
    m = 0.5 * (p_arr + q_arr)
    return max(0.0, 0.5 * kl_divergence(p_arr, m, eps=0.0) + 0.5 * kl_divergence(q_arr, m, eps=0.0))


def _chi2_homogeneity(counts_a: np.ndarray, counts_b: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity on the 2 x bins table, all-zero bins dropped (SciPy's default Yates
    correction applies only when two bins remain)."""
    table = np.stack([counts_a, counts_b])
    table = table[:, table.sum(axis=0) > 0]
    result = chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def intensity_histogram_test(
    real_images: torch.Tensor | np.ndarray,
    fake_images: torch.Tensor | np.ndarray,
    bins: int = 64,
    value_range: tuple[float, float] = (-1.0, 1.0),
    unit: str | HistogramUnit = HistogramUnit.IMAGE,
) -> dict[str, float]:
    """Compare the intensity distributions of real and synthetic images with a chi-square test and divergences.

    Values are clipped to ``value_range`` and binned into ``bins`` equal bins; then

    - ``chi2`` / ``chi2_pvalue``: Pearson's chi-square test of homogeneity (Pearson 1900) on the 2 x ``bins``
      contingency table of the two histograms (:func:`scipy.stats.chi2_contingency`; bins empty in both sets are
      dropped). A small p-value means the two histograms are unlikely to come from one distribution.
    - ``kl_divergence``: ``KL(real || fake)`` of the normalised histograms with the ``eps = 1e-10`` smoothing of
      :func:`kl_divergence`, so bins that are empty in the synthetic histogram give a large finite penalty.
    - ``js_divergence``: Jensen-Shannon divergence of the histograms (symmetric, <= log 2, no smoothing needed).

    ``unit`` decides what a sample is. ``"image"`` (default) bins one value per image, its mean intensity, so the
    test counts independent samples and its p-value is meaningful. ``"pixel"`` bins every pixel value: the counts
    are in the millions and neighbouring pixels are strongly correlated, which violates the independence assumption
    of the chi-square test and makes almost any difference "significant" (p ~ 0); use it for the divergences and
    for plotting, not for the p-value.

    Args:
        real_images: (N_real, ...) real images (tensor or array), e.g. (N, C, H, W).
        fake_images: (N_fake, ...) synthetic images (the per-image shape may differ from the real one).
        bins: number of histogram bins (>= 2).
        value_range: ``(low, high)`` of the histogram; values outside are clipped into the edge bins.
        unit: ``"image"`` (mean intensity per image) or ``"pixel"`` (all pixel values).

    Returns:
        ``{"chi2", "chi2_pvalue", "kl_divergence", "js_divergence"}`` as floats.

    Raises:
        ValueError: on fewer than 2 images per set, NaN/inf, ``bins`` < 2, an empty ``value_range`` or an unknown
            ``unit``.

    Example:
        >>> import torch
        >>> x = torch.rand(100, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
        >>> res = intensity_histogram_test(x, x.clone(), bins=8)
        >>> res["chi2_pvalue"], res["kl_divergence"]
        (1.0, 0.0)
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}.")
    if len(value_range) != 2 or not float(value_range[0]) < float(value_range[1]):
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}.")
    if str(unit) not in [u.value for u in HistogramUnit]:
        raise ValueError(f"unit must be one of {[u.value for u in HistogramUnit]}, got {unit!r}.")
    unit = HistogramUnit(unit)
    low, high = float(value_range[0]), float(value_range[1])

    counts = []
    for name, images in (("real_images", real_images), ("fake_images", fake_images)):
        data = _as_tensor(images, name)
        if data.ndim < 2:
            raise ValueError(f"{name} must have shape (N, ...) with one image per row, got {tuple(data.shape)}.")
        if data.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 images, got {data.shape[0]}.")
        flat = data.reshape(data.shape[0], -1).double()
        flat = flat.mean(dim=1) if unit == HistogramUnit.IMAGE else flat.reshape(-1)
        values = flat.clamp(low, high).cpu().numpy()
        counts.append(np.histogram(values, bins=bins, range=(low, high))[0].astype(np.float64))

    chi2, pvalue = _chi2_homogeneity(counts[0], counts[1])
    return {
        "chi2": chi2,
        "chi2_pvalue": pvalue,
        "kl_divergence": kl_divergence(counts[0], counts[1]),
        "js_divergence": js_divergence(counts[0], counts[1]),
    }


def _class_counts(labels: torch.Tensor | np.ndarray | Sequence[int], name: str, num_classes: int) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D integer class indices, got shape {arr.shape} (use argmax for one-hot/probabilities)."
        )
    if arr.size < 1:
        raise ValueError(f"{name} is empty.")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
        if (arr != np.round(arr)).any():
            raise ValueError(f"{name} must hold integer class indices, got non-integer values.")
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= num_classes:
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}], got values in [{arr.min()}, {arr.max()}].")
    return np.bincount(arr, minlength=num_classes).astype(np.float64)


def class_frequency_test(
    real_labels: torch.Tensor | np.ndarray | Sequence[int],
    fake_labels: torch.Tensor | np.ndarray | Sequence[int],
    num_classes: int,
) -> dict[str, float]:
    """Compare class frequencies, e.g. real labels vs an expert classifier's predictions on synthetic images.

    Pearson's chi-square test of homogeneity (Pearson 1900) on the 2 x ``num_classes`` table of counts
    (:func:`scipy.stats.chi2_contingency`, classes absent from both sets dropped) and ``KL(real || fake)`` of the
    class frequency vectors, smoothed as in :func:`kl_divergence` (``eps = 1e-10``).

    Args:
        real_labels: 1-D integer class indices of the real images.
        fake_labels: 1-D integer class indices for the synthetic images.
        num_classes: number of classes; labels must lie in ``[0, num_classes)``.

    Returns:
        ``{"chi2", "chi2_pvalue", "kl_divergence"}`` as floats.

    Raises:
        ValueError: on ``num_classes`` < 2, labels that are not 1-D integers in range, or empty label sets.

    Example:
        >>> res = class_frequency_test([0, 0, 1, 1], [0, 1, 0, 1], num_classes=2)
        >>> res["chi2_pvalue"], res["kl_divergence"]
        (1.0, 0.0)
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    real_counts = _class_counts(real_labels, "real_labels", num_classes)
    fake_counts = _class_counts(fake_labels, "fake_labels", num_classes)
    chi2, pvalue = _chi2_homogeneity(real_counts, fake_counts)
    return {"chi2": chi2, "chi2_pvalue": pvalue, "kl_divergence": kl_divergence(real_counts, fake_counts)}
