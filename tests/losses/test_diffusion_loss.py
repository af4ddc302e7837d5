"""DiffusionLoss: L2 and L1 values and the loss-type check."""

from __future__ import annotations

import pytest
import torch

from medsyn_monai.losses import DiffusionLoss


def test_loss():
    a, b = torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 2.0)
    assert DiffusionLoss("l2")(a, b).item() == 4.0
    assert DiffusionLoss("l1")(a, b).item() == 2.0
    with pytest.raises(ValueError):
        DiffusionLoss("huber")
