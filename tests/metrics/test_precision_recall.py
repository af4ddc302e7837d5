from __future__ import annotations

import numpy as np
import pytest
import torch

from medsyn_monai.metrics.precision_recall import PrecisionRecallDensityCoverage
from tests.metrics._helpers import check_feature_set_validation


def _reference_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Direct transcription of the definitions with full distance matrices (Naeem et al. 2020 reference code)."""

    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    r_real = np.sort(dist(real, real), axis=1)[:, k]
    r_fake = np.sort(dist(fake, fake), axis=1)[:, k]
    d = dist(real, fake)
    return {
        "precision": float((d < r_real[:, None]).any(axis=0).mean()),
        "recall": float((d < r_fake[None, :]).any(axis=1).mean()),
        "density": float((d < r_real[:, None]).sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) < r_real).mean()),
    }


def test_set_with_itself_is_perfect():
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(0))
    assert PrecisionRecallDensityCoverage()(x, x) == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_two_samples_of_one_distribution():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(1500, 8, generator=g), torch.randn(1500, 8, generator=g)
    res = PrecisionRecallDensityCoverage(nearest_k=5)(real, fake)
    assert res["precision"] > 0.8 and res["recall"] > 0.8
    assert 0.8 < res["density"] < 1.2
    assert res["coverage"] > 0.9


def test_far_apart_sets_score_zero():
    g = torch.Generator().manual_seed(2)
    real = torch.randn(200, 4, generator=g)
    fake = torch.randn(200, 4, generator=g) + 100.0
    assert PrecisionRecallDensityCoverage()(real, fake) == {
        "precision": 0.0,
        "recall": 0.0,
        "density": 0.0,
        "coverage": 0.0,
    }


def test_mode_collapse_keeps_precision_but_loses_recall_and_coverage():
    g = torch.Generator().manual_seed(3)
    real = torch.randn(1000, 4, generator=g)
    # every fake sample is a tiny perturbation of one real sample
    fake = real[0] + 1e-4 * torch.randn(300, 4, generator=g)
    res = PrecisionRecallDensityCoverage(nearest_k=5)(real, fake)
    assert res["precision"] == 1.0
    assert res["recall"] < 0.05
    assert res["coverage"] < 0.05


def test_matches_reference_implementation_and_chunking_does_not_change_results():
    g = torch.Generator().manual_seed(4)
    real = torch.randn(120, 5, generator=g, dtype=torch.float64)
    fake = 0.7 * torch.randn(90, 5, generator=g, dtype=torch.float64) + 0.4
    expected = _reference_prdc(real.numpy(), fake.numpy(), k=3)
    for chunk_size in (7, 1024):
        res = PrecisionRecallDensityCoverage(nearest_k=3, chunk_size=chunk_size)(real, fake)
        assert res == pytest.approx(expected, abs=1e-12)
    assert PrecisionRecallDensityCoverage(nearest_k=3)(real.numpy(), fake.numpy()) == pytest.approx(expected)
    assert 0.0 < expected["precision"] < 1.0 and 0.0 < expected["recall"] < 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="nearest_k"):
        PrecisionRecallDensityCoverage(nearest_k=0)
    with pytest.raises(ValueError, match="chunk_size"):
        PrecisionRecallDensityCoverage(chunk_size=0)
    check_feature_set_validation(PrecisionRecallDensityCoverage(nearest_k=5), min_samples=6)  # nearest_k + 1
