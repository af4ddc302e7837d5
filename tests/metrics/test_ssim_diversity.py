from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import SSIMMetric

from medsyn_monai.metrics.ssim_diversity import cross_set_ssim, intra_set_ssim


def _smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Images in [-1, 1] sharing one smooth structure (a Gaussian blob) with small per-image variations."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.linspace(-1, 1, size)
    xx, yy = torch.meshgrid(coords, coords, indexing="ij")
    out = []
    for _ in range(n):
        cx, cy = 0.1 * torch.randn(2, generator=g)
        blob = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.2)
        out.append(2 * blob - 1 + 0.05 * torch.randn(size, size, generator=g))
    return torch.stack(out)[:, None].clamp(-1, 1)


def _noise(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _pairs_ssim(set_a: torch.Tensor, set_b: torch.Tensor, pairs: list[tuple[int, int]]) -> list[float]:
    """SSIM of each pair (set_a[i], set_b[j]) straight from MONAI's SSIMMetric."""
    i, j = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    return SSIMMetric(spatial_dims=2, data_range=2.0, reduction="none")(set_a[i], set_b[j]).flatten().tolist()


def test_identical_images_give_one():
    img = _noise(1, 32, 0)
    assert intra_set_ssim(img.repeat(5, 1, 1, 1)) == pytest.approx(1.0, abs=1e-6)
    assert cross_set_ssim(img, img.clone()) == pytest.approx(1.0, abs=1e-6)
    # MS-SSIM on images large enough for its 5 scales
    big = _noise(1, 176, 1)
    assert intra_set_ssim(big.repeat(3, 1, 1, 1), multiscale=True) == pytest.approx(1.0, abs=1e-5)


def test_noise_images_are_diverse():
    assert intra_set_ssim(_noise(8, 32, 2)) < 0.2
    assert intra_set_ssim(_smooth_images(8, 32, 3)) > 0.5


def test_all_pairs_equal_the_mean_of_pairwise_ssim():
    images = _smooth_images(6, 24, 4)
    expected = np.mean(_pairs_ssim(images, images, [(i, j) for i in range(6) for j in range(i + 1, 6)]))
    assert intra_set_ssim(images) == pytest.approx(expected, rel=1e-6)
    assert intra_set_ssim(images.numpy()) == pytest.approx(expected, rel=1e-6)
    # asking for more pairs than exist uses them all
    assert intra_set_ssim(images, num_pairs=1000) == pytest.approx(expected, rel=1e-6)


def test_random_pairs_are_distinct_reproducible_and_seeded():
    images = torch.cat([_smooth_images(5, 24, 5), _noise(5, 24, 6)])
    all_values = sorted(_pairs_ssim(images, images, [(i, j) for i in range(10) for j in range(i + 1, 10)]))
    value = intra_set_ssim(images, num_pairs=5, seed=3)
    assert intra_set_ssim(images, num_pairs=5, seed=3) == value
    assert intra_set_ssim(images, num_pairs=5, seed=4) != value
    # the mean of 5 distinct pairs lies between the means of the 5 smallest and the 5 largest pair values
    assert np.mean(all_values[:5]) - 1e-6 <= value <= np.mean(all_values[-5:]) + 1e-6


def test_per_class_diversity():
    copies = _noise(1, 32, 7).repeat(4, 1, 1, 1)
    noise = _noise(4, 32, 8)
    images = torch.cat([copies, noise])
    res = intra_set_ssim(images, labels=torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
    assert set(res) == {0, 1, "mean"}
    assert res[0] == pytest.approx(1.0, abs=1e-6)
    assert res[1] < 0.2
    assert res["mean"] == pytest.approx((res[0] + res[1]) / 2)
    named = intra_set_ssim(images, labels=["a"] * 4 + ["b"] * 4)
    assert named["a"] == pytest.approx(res[0]) and named["b"] == pytest.approx(res[1])


def test_cross_set_ssim_ranks_similar_sets_above_noise():
    train, test = _smooth_images(10, 32, 9), _smooth_images(10, 32, 10)
    noise = _noise(10, 32, 11)
    same = cross_set_ssim(train, train, num_pairs=50)
    real_vs_real = cross_set_ssim(train, test, num_pairs=50)
    vs_noise = cross_set_ssim(train, noise, num_pairs=50)
    assert same > vs_noise + 0.3
    assert real_vs_real > vs_noise + 0.3
    assert cross_set_ssim(train, test, num_pairs=50, seed=1) == cross_set_ssim(train, test, num_pairs=50, seed=1)
    # with at least as many pairs as |A| x |B|, all pairs are used
    a, b = train[:3], noise[:2]
    expected = np.mean(_pairs_ssim(a, b, [(i, j) for i in range(3) for j in range(2)]))
    assert cross_set_ssim(a, b, num_pairs=6) == pytest.approx(expected, rel=1e-6)


def test_large_sets_use_random_pairs_by_default():
    # 150 images -> 11175 pairs > MAX_ALL_PAIRS, so num_pairs=None samples 10000 of them; tiny images keep it fast
    images = _noise(150, 11, 12)
    value = intra_set_ssim(images)
    assert math.isfinite(value) and value < 0.2


def test_bad_inputs():
    images = _noise(4, 32, 13)
    with pytest.raises(ValueError, match="multiscale=False"):
        intra_set_ssim(images, multiscale=True)
    with pytest.raises(ValueError, match="multiscale=False"):
        cross_set_ssim(images, images, multiscale=True)
    with pytest.raises(ValueError, match="at least 11 px"):
        intra_set_ssim(_noise(4, 8, 0))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        intra_set_ssim(images[:, 0])
    with pytest.raises(ValueError, match="at least 2 images"):
        intra_set_ssim(images[:1])
    with pytest.raises(ValueError, match="NaN"):
        intra_set_ssim(torch.full((3, 1, 16, 16), float("nan")))
    with pytest.raises(ValueError, match="num_pairs"):
        intra_set_ssim(images, num_pairs=0)
    with pytest.raises(ValueError, match="num_pairs"):
        cross_set_ssim(images, images, num_pairs=None)
    with pytest.raises(ValueError, match="data_range"):
        intra_set_ssim(images, data_range=0.0)
    with pytest.raises(ValueError, match="class 1"):
        intra_set_ssim(images, labels=[0, 0, 0, 1])
    with pytest.raises(ValueError, match="labels has 3 entries"):
        intra_set_ssim(images, labels=[0, 0, 1])
    with pytest.raises(ValueError, match="same"):
        cross_set_ssim(images, _noise(4, 16, 0))
