"""save_histogram_png: one bar colour per set, and its input checks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medsyn_monai.visualize import save_histogram_png


def test_save_histogram_png(tmp_path):
    path = save_histogram_png({"real": [0, 4, 0, 0], "synthetic": [0, 0, 0, 4]}, tmp_path / "h.png", size=(300, 200))
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
    assert rgb.shape == (200, 300, 3)
    # the two bars are drawn in different colours: a blue-ish and an orange-ish region exist
    blue = (rgb[..., 2] > rgb[..., 0] + 40).sum()
    orange = (rgb[..., 0] > rgb[..., 2] + 40).sum()
    assert blue > 100 and orange > 100
    with pytest.raises(ValueError, match="same number of bins"):
        save_histogram_png({"a": [1, 2], "b": [1, 2, 3]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="sums to zero"):
        save_histogram_png({"a": [0, 0]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="empty"):
        save_histogram_png({}, tmp_path / "x.png")
