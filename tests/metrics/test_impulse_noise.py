from __future__ import annotations

import pytest
import torch

from medsyn_monai.metrics import impulse_noise_rate


def _smooth(n=4, size=16):
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    return (0.8 * torch.cos(2 * x) * torch.sin(y)).expand(n, 1, size, size).clone()


def test_known_rates_for_salt_and_pepper():
    g = torch.Generator().manual_seed(0)
    clean = _smooth()
    assert impulse_noise_rate(clean).tolist() == [0.0] * 4
    noisy = clean.clone()
    mask = torch.rand(noisy.shape, generator=g) < 0.05  # 5 % of the pixels set to -1 or +1
    noisy[mask] = torch.where(torch.rand(noisy.shape, generator=g) < 0.5, -1.0, 1.0)[mask]
    rate = impulse_noise_rate(noisy)
    changed = ((noisy - clean).abs() > 0.5).float().reshape(4, -1).mean(1)
    # the impulses are found: a few are hidden by neighbouring impulses of the same sign, a few pixels next to two
    # impulses are flagged
    assert torch.all(rate <= 1.2 * changed) and torch.all(rate >= 0.8 * changed)
    assert 0.02 < float(rate.mean()) < 0.06


def test_gaussian_noise_below_threshold_is_not_counted_and_scale():
    g = torch.Generator().manual_seed(1)
    mild = _smooth() + 0.05 * torch.randn(4, 1, 16, 16, generator=g)
    assert float(impulse_noise_rate(mild).max()) == 0.0
    # 8-bit images: the threshold scales with value_range
    img8 = torch.full((1, 1, 8, 8), 100.0)
    img8[0, 0, 3, 3] = 250.0
    assert impulse_noise_rate(img8, value_range=255.0).item() == pytest.approx(1 / 64)
    assert impulse_noise_rate(img8).item() == pytest.approx(1 / 64)  # also in [-1, 1] units (150 > 0.5)
    assert impulse_noise_rate(img8, threshold=200.0).item() == 0.0


def test_volumes_and_channels():
    vol = torch.zeros(2, 3, 8, 8, 4)
    vol[1, 2, 4, 4, 1] = 1.0
    rate = impulse_noise_rate(vol)
    assert rate.shape == (2,) and rate[0] == 0 and rate[1] == pytest.approx(1 / (3 * 8 * 8 * 4))


@pytest.mark.parametrize("kwargs", [{"kernel_size": 4}, {"kernel_size": 1}, {"threshold": 0.0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        impulse_noise_rate(torch.zeros(1, 1, 8, 8), **kwargs)
    with pytest.raises(ValueError, match="images must be"):
        impulse_noise_rate(torch.zeros(8, 8))
