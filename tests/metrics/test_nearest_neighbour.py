"""Nearest-neighbour distances: feature cosine, and pixel correlation aligned over shifts, flips and intensity."""

from __future__ import annotations

import pytest
import torch

from medsyn_monai.metrics import NearestNeighbours, aligned_correlation_distance, feature_cosine_distance


def _images(n=6, size=16, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_aligned_correlation_finds_changed_copies():
    ref = _images()
    changed = torch.cat([ref[0:1], ref[1:2].flip(-1), ref[2:3].flip(-2), torch.roll(ref[3:4], (2, -1), (-2, -1)),
                         ref[4:5] * 0.3 - 0.2])  # fmt: skip
    d, i = aligned_correlation_distance(changed, ref, max_shift=2)
    assert i.tolist() == [0, 1, 2, 3, 4] and d.max() < 1e-9
    far = _images(3, seed=1)  # independent noise: correlation ~0
    d_far, _ = aligned_correlation_distance(far, ref)
    assert d_far.min() > 0.5
    # without the search, flips and shifts are not found
    d_plain, _ = aligned_correlation_distance(changed[1:4], ref, max_shift=0, flips=False)
    assert d_plain.min() > 0.5


def test_rgb_3d_and_noise():
    ref = torch.rand(4, 3, 10, 10, generator=torch.Generator().manual_seed(2))
    noisy = ref + 0.05 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(3))
    d, i = aligned_correlation_distance(noisy, ref, max_shift=1)
    assert i.tolist() == [0, 1, 2, 3] and d.max() < 0.05
    vol = torch.rand(3, 1, 6, 8, 8, generator=torch.Generator().manual_seed(4))
    d, i = aligned_correlation_distance(vol.flip(-3), vol, max_shift=1)
    assert i.tolist() == [0, 1, 2] and d.max() < 1e-9


def test_feature_cosine_and_wrapper():
    f = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    d, i = feature_cosine_distance(f * 3, f)
    assert i.tolist() == list(range(5)) and d.max() < 1e-12
    d, _ = feature_cosine_distance(-f[:1], f[:1])
    assert d.item() == pytest.approx(2.0)
    images = _images(4)
    out = NearestNeighbours(max_shift=1)(images, images, f[:4], f[:4])
    assert set(out) == {"pixel_distance", "pixel_index", "feature_distance", "feature_index"}
    assert set(NearestNeighbours()(images, images)) == {"pixel_distance", "pixel_index"}


def test_errors():
    with pytest.raises(ValueError, match="do not match"):
        aligned_correlation_distance(_images(2, size=16), _images(2, size=12))
    with pytest.raises(ValueError, match="reference set is empty"):
        aligned_correlation_distance(_images(2), _images(2)[:0])
    with pytest.raises(ValueError, match="max_shift must be >= 0 and leave pixels"):
        aligned_correlation_distance(_images(2, size=4), _images(2, size=4), max_shift=2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        aligned_correlation_distance(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="features must be 2-D"):
        feature_cosine_distance(torch.zeros(2, 3, 1), torch.zeros(2, 3, 1))
