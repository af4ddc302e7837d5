from __future__ import annotations

import pytest

from medsyn_monai.apps.evaluation import GuidanceSweep


def test_guidance_scales_must_be_valid_and_distinct():
    with pytest.raises(ValueError, match="distinct"):
        GuidanceSweep(None, None, ["a", "b"], guidance_scales=[1.0, 1.0000001])
    with pytest.raises(ValueError, match="non-empty"):
        GuidanceSweep(None, None, ["a", "b"], guidance_scales=[])
    with pytest.raises(ValueError, match="both real_images"):
        GuidanceSweep(None, None, ["a", "b"], guidance_scales=[1.0, 2.0], real_images=object())
    assert GuidanceSweep.key(1.5) == "w1.5" and GuidanceSweep.key(3.0) == "w3"
