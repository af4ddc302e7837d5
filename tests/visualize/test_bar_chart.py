"""draw_bar_chart / save_bar_chart_png: one colour per series, bar heights, error bars, and the input checks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medsyn_monai.visualize import draw_bar_chart, save_bar_chart_png


def test_bars_colours_heights_and_error_bars(tmp_path):
    values: dict[str, list[float | None]] = {"real": [1.0, 0.5], "synthetic": [0.25, None]}
    path = save_bar_chart_png(values, ["a", "b"], tmp_path / "bars.png", errors={"real": [0.0, 0.2]}, title="t",
                              ylabel="accuracy", size=(640, 400))  # fmt: skip
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
    assert rgb.shape == (400, 640, 3)
    blue, orange = (31, 119, 180), (255, 127, 14)  # the first two series colours

    def heights(colour):  # pixels of the colour per column, left of the legend (x < 520)
        return (rgb[:, :520] == np.array(colour)).all(axis=-1).sum(axis=0)

    blue_h, orange_h = heights(blue), heights(orange)
    # the bars of 1.0 (group a) and 0.5 (group b): about 2 : 1 (a few pixels for the outlines)
    assert abs(blue_h[:300].max() - 2 * blue_h[300:].max()) <= 6 and blue_h[:300].max() > 200
    # 0.25 for "synthetic" in group a, and no bar for its None in group b
    assert abs(blue_h[:300].max() - 4 * orange_h[:300].max()) <= 12 and orange_h[300:].max() == 0
    # the error bar of 0.5 +- 0.2 is a black whisker reaching above the second blue bar, which is below the first
    dark: np.ndarray = np.asarray((rgb[:, :520] < 60).all(axis=-1))
    bar_b = np.flatnonzero(blue_h[300:] > 0) + 300
    centre = int(bar_b.mean())
    top_b = np.flatnonzero((rgb[:, centre - 3] == np.array(blue)).all(axis=-1)).min()
    assert dark[top_b - 40 : top_b - 2, centre - 1 : centre + 2].any()
    bar_a = np.flatnonzero(blue_h[:300] > 0)
    top_a = np.flatnonzero((rgb[:, int(bar_a.mean()) - 3] == np.array(blue)).all(axis=-1)).min()
    assert top_a < top_b


def test_draw_bar_chart_errors():
    with pytest.raises(ValueError, match="at least one series"):
        draw_bar_chart({}, ["a"])
    with pytest.raises(ValueError, match="2 values for 1 groups"):
        draw_bar_chart({"s": [1.0, 2.0]}, ["a"])
    with pytest.raises(ValueError, match="not in values"):
        draw_bar_chart({"s": [1.0]}, ["a"], errors={"t": [0.1]})
    with pytest.raises(ValueError, match="negative error"):
        draw_bar_chart({"s": [1.0]}, ["a"], errors={"s": [-0.1]})
    with pytest.raises(ValueError, match="non-finite"):
        draw_bar_chart({"s": [float("inf")]}, ["a"])
    with pytest.raises(ValueError, match="low < high"):
        draw_bar_chart({"s": [1.0]}, ["a"], value_range=(1.0, 1.0))
    with pytest.raises(ValueError, match="at least"):
        draw_bar_chart({"s": [1.0]}, ["a"], size=(100, 100))
