"""The confusion-matrix PNG: layout, cell colours by row share, labels, and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medsyn_monai.visualize.confusion_matrix import confusion_matrix_layout, save_confusion_matrix_png


def test_confusion_matrix_png(tmp_path):
    matrix = [[8, 2, 0], [0, 10, 0], [1, 4, 5]]
    names = ["normal", "a_very_long_class_name_that_is_shortened", "lesion"]
    path = save_confusion_matrix_png(
        torch.tensor(matrix), names, tmp_path / "sub" / "cm.png", title="expert", cell_size=80
    )
    assert path == tmp_path / "sub" / "cm.png" and path.is_file()
    lay = confusion_matrix_layout(3, cell_size=80, title="expert")
    with Image.open(path) as im:
        assert im.format == "PNG"
        image = np.asarray(im.convert("RGB"))
    assert (image.shape[1], image.shape[0]) == (lay["width"], lay["height"]) == (2 * 80 + 3 * 80 + 20, 76 + 240 + 20)

    def corner(i: int, j: int) -> tuple[int, ...]:  # a pixel inside cell (i, j), away from its text
        return tuple(int(v) for v in image[lay["top"] + i * 80 + 4, lay["left"] + j * 80 + 4])

    assert corner(1, 1) == (8, 48, 107)  # 100 % of its row: darkest blue
    assert corner(1, 0) == (247, 251, 255)  # 0 %: white-ish
    assert sum(corner(0, 0)) < sum(corner(2, 1)) < sum(corner(0, 1))  # 80 % darker than 40 % darker than 20 %
    assert (image[: lay["top"] // 2] < 100).any()  # the title is drawn
    assert (image[:, : lay["left"]] < 100).any()  # the row labels are drawn


def test_confusion_matrix_png_errors(tmp_path):
    with pytest.raises(ValueError, match="square"):
        save_confusion_matrix_png([[1, 2, 3], [4, 5, 6]], ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="class_names"):
        save_confusion_matrix_png([[1, 2], [3, 4]], ["a"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="non-negative"):
        save_confusion_matrix_png([[1, -2], [3, 4]], ["a", "b"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
