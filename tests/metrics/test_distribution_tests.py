from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medsyn_monai.metrics.distribution_tests import (
    class_frequency_test,
    intensity_histogram_test,
    js_divergence,
    kl_divergence,
)


def _images(n: int, shift: float, seed: int) -> torch.Tensor:
    """(n, 1, 8, 8) images in [-1, 1]: a random per-image brightness (N(shift, 0.3)) plus pixel noise."""
    g = torch.Generator().manual_seed(seed)
    means = 0.3 * torch.randn(n, 1, 1, 1, generator=g) + shift
    return (means + 0.2 * torch.randn(n, 1, 8, 8, generator=g)).clamp(-1, 1)


def test_kl_divergence_hand_computed():
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_divergence([0.5, 0.5], [0.25, 0.75], eps=0) == pytest.approx(expected)
    # inputs are normalised: counts give the same value
    assert kl_divergence(torch.tensor([3.0, 3.0]), np.array([1, 3]), eps=0) == pytest.approx(expected)
    assert kl_divergence([2, 5, 1], [4, 10, 2]) == 0.0
    # an empty bin of q: infinite without smoothing, large but finite with it
    assert kl_divergence([1, 1], [1, 0], eps=0) == math.inf
    smoothed = kl_divergence([1, 1], [1, 0])
    assert math.isfinite(smoothed) and smoothed > 5


def test_js_divergence_bounds():
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(math.log(2))
    assert js_divergence([1, 2, 3], [2, 4, 6]) == 0.0
    p, q = np.array([0.2, 0.5, 0.3]), np.array([0.4, 0.1, 0.5])
    m = (p + q) / 2
    expected = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
    assert js_divergence(p, q) == pytest.approx(expected)


def test_intensity_test_same_distribution_is_not_rejected_at_image_level():
    res = intensity_histogram_test(_images(500, 0.0, 0), _images(500, 0.0, 1))
    assert set(res) == {"chi2", "chi2_pvalue", "kl_divergence", "js_divergence"}
    assert res["chi2_pvalue"] > 0.05
    assert res["kl_divergence"] > 0 and 0 < res["js_divergence"] < math.log(2)
    # calibration: over repeated draws from one distribution, p > 0.05 in about 95% of them
    pvalues = [
        intensity_histogram_test(_images(300, 0.0, s), _images(300, 0.0, 100 + s))["chi2_pvalue"] for s in range(30)
    ]
    assert np.mean(np.asarray(pvalues) > 0.05) >= 0.8


def test_intensity_test_shifted_distribution_is_rejected():
    real = _images(500, 0.0, 0)
    for unit in ("image", "pixel"):
        same = intensity_histogram_test(real, _images(500, 0.0, 1), unit=unit)
        shifted = intensity_histogram_test(real, _images(500, 0.15, 2), unit=unit)
        assert shifted["chi2_pvalue"] < 0.01
        assert shifted["chi2"] > same["chi2"]
        assert shifted["js_divergence"] > same["js_divergence"]


def test_pixel_level_p_values_are_misleading_for_correlated_pixels():
    # two samples of ONE distribution: the pixels inside an image share its brightness, so pixel counts overstate the
    # evidence by ~64x and the pixel-level test rejects, while the image-level test (the default) does not
    real, fake = _images(500, 0.0, 0), _images(500, 0.0, 1)
    assert intensity_histogram_test(real, fake, unit="image")["chi2_pvalue"] > 0.05
    assert intensity_histogram_test(real, fake, unit="pixel")["chi2_pvalue"] < 1e-6


def test_intensity_test_identical_histograms():
    real = _images(200, 0.0, 3)
    res = intensity_histogram_test(real, real[torch.randperm(200)], bins=32)
    assert res["kl_divergence"] == 0.0 and res["js_divergence"] == 0.0
    assert res["chi2"] == pytest.approx(0.0, abs=1e-9) and res["chi2_pvalue"] == pytest.approx(1.0)
    # values outside value_range are clipped into the edge bins
    above = torch.full((10, 1, 4, 4), 5.0)
    top = torch.full((10, 1, 4, 4), 1.0)
    assert intensity_histogram_test(above, top, unit="pixel")["kl_divergence"] == 0.0
    assert intensity_histogram_test(above.numpy(), top.numpy(), value_range=(0, 10))["kl_divergence"] > 1.0


def test_class_frequency_test_known_table():
    real = [0] * 50 + [1] * 30 + [2] * 20
    fake = [0] * 20 + [1] * 30 + [2] * 50
    table = np.array([[50, 30, 20], [20, 30, 50]], dtype=float)
    expected = np.outer(table.sum(1), table.sum(0)) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    res = class_frequency_test(torch.tensor(real), np.array(fake), num_classes=3)
    assert res["chi2"] == pytest.approx(chi2)
    assert res["chi2_pvalue"] == pytest.approx(math.exp(-chi2 / 2))  # chi2 survival function with 2 dof
    assert res["chi2_pvalue"] < 0.01
    assert res["kl_divergence"] == pytest.approx(kl_divergence([50, 30, 20], [20, 30, 50]))
    assert res["kl_divergence"] > 0


def test_class_frequency_test_same_and_shifted_distributions():
    # under the null the p-value is uniform, so a single draw fails "p > 0.05" 5% of the time: check the rate instead
    probs = [0.4, 0.3, 0.2, 0.1]
    rng = np.random.default_rng(0)
    same_p, shifted_p = [], []
    for _ in range(40):
        real = rng.choice(4, size=1000, p=probs)
        same_p.append(class_frequency_test(real, rng.choice(4, size=800, p=probs), num_classes=4)["chi2_pvalue"])
        shifted = rng.choice(4, size=800, p=[0.25, 0.25, 0.25, 0.25])
        shifted_p.append(class_frequency_test(real, shifted, num_classes=4)["chi2_pvalue"])
    assert np.mean(np.asarray(same_p) > 0.05) >= 0.85
    assert np.median(same_p) > 0.2
    assert max(shifted_p) < 0.01
    identical = class_frequency_test(real, rng.permutation(real), num_classes=4)
    assert identical["kl_divergence"] == 0.0 and identical["chi2_pvalue"] == pytest.approx(1.0)
    # a class absent from both sets is dropped from the table (dof stays 3 - 1 for 3 used classes)
    res = class_frequency_test([0, 0, 1, 2], [0, 1, 1, 2], num_classes=5)
    assert math.isfinite(res["chi2"]) and 0 < res["chi2_pvalue"] <= 1


def test_bad_inputs():
    img = _images(10, 0.0, 0)
    with pytest.raises(ValueError, match="bins"):
        intensity_histogram_test(img, img, bins=1)
    with pytest.raises(ValueError, match="value_range"):
        intensity_histogram_test(img, img, value_range=(1, -1))
    with pytest.raises(ValueError, match="unit"):
        intensity_histogram_test(img, img, unit="voxel")
    with pytest.raises(ValueError, match="at least 2 images"):
        intensity_histogram_test(img[:1], img)
    with pytest.raises(ValueError, match="NaN"):
        intensity_histogram_test(img, torch.full((4, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="num_classes"):
        class_frequency_test([0, 0], [0, 0], num_classes=1)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        class_frequency_test([0, 3], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="argmax"):
        class_frequency_test(np.eye(3), [0, 1, 2], num_classes=3)
    with pytest.raises(ValueError, match="integer"):
        class_frequency_test([0.5, 1.0], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="empty"):
        class_frequency_test([], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="same number of bins"):
        kl_divergence([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        kl_divergence([1, -1], [1, 1])
    with pytest.raises(ValueError, match="sums to zero"):
        js_divergence([0, 0], [1, 1])
    with pytest.raises(ValueError, match="eps"):
        kl_divergence([1, 1], [1, 1], eps=-1.0)
