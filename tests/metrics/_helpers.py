"""Helpers shared by the tests of :mod:`medsyn_monai.metrics`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


def check_feature_set_validation(metric: Callable, min_samples: int) -> None:
    """The input checks of a metric on two feature sets (N, D), e.g. KID or precision/recall: too few samples, feature
    sizes that differ, NaN or infinite values, and arrays that are not (N, D)."""
    with pytest.raises(ValueError, match=f"at least {min_samples}"):
        metric(torch.randn(min_samples - 1, 3), torch.randn(50, 3))
    with pytest.raises(ValueError, match="same feature size"):
        metric(torch.randn(50, 3), torch.randn(50, 4))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="NaN"):
            metric(torch.randn(50, 3), torch.full((50, 3), bad))
    for shape in ((50,), (50, 3, 1)):
        with pytest.raises(ValueError, match=r"\(N, D\)"):
            metric(torch.randn(*shape), torch.randn(*shape))
