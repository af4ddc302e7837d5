"""Overlaid histograms drawn with PIL (matplotlib is not a dependency)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .confusion_matrix import _fit, _font, _text_size

__all__ = ["save_histogram_png"]

#: fill colours of the successive histograms (matplotlib "tab10" blue, orange, green, red, purple, brown)
_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
_ALPHA = 110  # opacity (of 255) of the bar fills, so that overlapping histograms stay visible


def _counts(values: torch.Tensor | np.ndarray | Sequence[float], name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"histogram {name!r} must be a non-empty 1-D array of counts, got shape {arr.shape}.")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"histogram {name!r} must hold finite, non-negative counts.")
    if arr.sum() <= 0:
        raise ValueError(f"histogram {name!r} sums to zero.")
    return arr


def _tick(value: float) -> str:
    return f"{value:.3g}"


def save_histogram_png(
    histograms: Mapping[str, torch.Tensor | np.ndarray | Sequence[float]],
    path: str | Path,
    value_range: tuple[float, float] = (-1.0, 1.0),
    title: str = "",
    xlabel: str = "intensity",
    size: tuple[int, int] = (640, 400),
) -> Path:
    """Draw several histograms over one axis as translucent bars with solid outlines, and a legend.

    Each histogram is normalised to fractions (sum 1), so sets of different sizes can be compared; the y axis is
    the fraction of values per bin. Bins are equal and span ``value_range``. Histograms are drawn in the order given,
    with the colours blue, orange, green, red, purple, brown (then repeated).

    Args:
        histograms: ``{label: counts}``; every ``counts`` is a 1-D non-negative array with the same number of bins.
        path: output file (parent folders are created).
        value_range: ``(low, high)`` of the bins, written under the x axis.
        title: title drawn above the plot.
        xlabel: name of the x axis.
        size: ``(width, height)`` of the image in pixels (at least ``(240, 180)``).

    Returns:
        the path of the written PNG.

    Raises:
        ValueError: no histograms, different numbers of bins, negative / non-finite / all-zero counts, an empty
            ``value_range`` or a too small ``size``.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> p = save_histogram_png({"real": [1, 3, 2], "synthetic": [2, 2, 2]}, tempfile.mkdtemp() + "/h.png")
        >>> Image.open(p).size
        (640, 400)
    """
    if not histograms:
        raise ValueError("histograms is empty: give at least one {label: counts} entry.")
    fractions = {str(label): _counts(c, str(label)) for label, c in histograms.items()}
    fractions = {label: c / c.sum() for label, c in fractions.items()}
    num_bins = {c.size for c in fractions.values()}
    if len(num_bins) != 1:
        raise ValueError(f"all histograms must have the same number of bins, got {sorted(num_bins)}.")
    nb = num_bins.pop()
    low, high = float(value_range[0]), float(value_range[1])
    if not low < high:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}.")
    width, height = int(size[0]), int(size[1])
    if width < 240 or height < 180:
        raise ValueError(f"size must be at least (240, 180) pixels, got {tuple(size)}.")

    font_size = max(10, height // 30)
    font, bold = _font(font_size), _font(int(font_size * 1.25))
    left, right, bottom = 6 * font_size, font_size, 4 * font_size
    top = font_size + (2 * font_size if title else 0)
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = max(float(c.max()) for c in fractions.values()) * 1.08

    image = Image.new("RGBA", (width, height), (255, 255, 255, 255))
    draw = ImageDraw.Draw(image)

    def x_of(i: float) -> float:
        return left + i * plot_w / nb

    def y_of(v: float) -> float:
        return top + plot_h * (1.0 - v / y_max)

    for k, frac in enumerate(fractions.values()):
        colour = _COLOURS[k % len(_COLOURS)]
        layer = Image.new("RGBA", image.size, (255, 255, 255, 0))
        layer_draw = ImageDraw.Draw(layer)
        outline: list[tuple[float, float]] = [(x_of(0), y_of(0.0))]
        for i, v in enumerate(frac):
            if v > 0:
                layer_draw.rectangle((x_of(i), y_of(v), x_of(i + 1), y_of(0.0)), fill=(*colour, _ALPHA))
            outline += [(x_of(i), y_of(v)), (x_of(i + 1), y_of(v))]
        outline.append((x_of(nb), y_of(0.0)))
        layer_draw.line(outline, fill=(*colour, 255), width=2)
        image = Image.alpha_composite(image, layer)
    draw = ImageDraw.Draw(image)

    # axes, ticks and labels
    draw.line((left, top, left, top + plot_h, left + plot_w, top + plot_h), fill="black", width=1)
    for value in (low, (low + high) / 2, high):
        x = left + (value - low) / (high - low) * plot_w
        draw.line((x, top + plot_h, x, top + plot_h + 4), fill="black")
        text = _tick(value)
        w, _ = _text_size(draw, text, font)
        draw.text((x - w / 2, top + plot_h + 6), text, fill="black", font=font)
    w, _ = _text_size(draw, xlabel, font)
    draw.text((left + (plot_w - w) / 2, top + plot_h + 2 * font_size), xlabel, fill="black", font=font)
    for value in (0.0, y_max / 2, y_max):
        y = y_of(value)
        draw.line((left - 4, y, left, y), fill="black")
        text = _tick(value)
        w, h = _text_size(draw, text, font)
        draw.text((left - 6 - w, y - h / 2), text, fill="black", font=font)
    ylabel = "fraction"
    w, h = _text_size(draw, ylabel, font)
    rotated = Image.new("RGBA", (int(w) + 4, int(h) + 8), (255, 255, 255, 255))
    ImageDraw.Draw(rotated).text((2, 2), ylabel, fill="black", font=font)
    rotated = rotated.rotate(90, expand=True)
    image.paste(rotated, (2, int(top + (plot_h - rotated.height) / 2)))

    # legend on a white box, top right inside the plot
    swatch = font_size
    max_text = plot_w // 2 - swatch - 18
    labels = [_fit(draw, label, font, max_text) for label in fractions]
    box_w = swatch + 18 + max(_text_size(draw, t, font)[0] for t in labels)
    step = int(swatch * 1.5)
    x0, y0 = left + plot_w - box_w - 4, top + 4
    draw.rectangle((x0, y0, x0 + box_w, y0 + step * len(labels) + 6), fill="white", outline=(160, 160, 160))
    for k, text in enumerate(labels):
        y = y0 + 6 + k * step
        draw.rectangle((x0 + 6, y, x0 + 6 + swatch, y + swatch), fill=_COLOURS[k % len(_COLOURS)], outline="black")
        draw.text((x0 + swatch + 12, y), text, fill="black", font=font)
    if title:
        text = _fit(draw, title, bold, width - 8)
        w, _ = _text_size(draw, text, bold)
        draw.text(((width - w) / 2, font_size // 2), text, fill="black", font=bold)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path, format="PNG")
    return path
