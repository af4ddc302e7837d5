"""class_weights: inverse-frequency weights with mean 1, and bad labels."""

from __future__ import annotations

import pytest
import torch

from medsyn_monai.losses import class_weights


def test_class_weights():
    assert class_weights([0, 0, 0, 1], 2).tolist() == [0.5, 1.5]
    w = class_weights(torch.tensor([0, 1, 1, 2, 2, 2, 2]), 3)  # counts 1, 2, 4 -> 1/n proportional to 4:2:1
    torch.testing.assert_close(w, torch.tensor([4.0, 2.0, 1.0]) / (7 / 3))
    assert w.dtype == torch.float32 and w.mean().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"classes \[2\] have no samples"):
        class_weights([0, 1, 1], 3)
    with pytest.raises(ValueError, match="in \\[0, 2\\)"):
        class_weights([0, 2], 2)
    with pytest.raises(ValueError, match="at least one"):
        class_weights([], 2)
