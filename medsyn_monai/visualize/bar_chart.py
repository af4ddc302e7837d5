"""Grouped bar chart with error bars drawn with PIL (matplotlib is not a dependency)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from medsyn_monai.utils.io import atomic_write

from .confusion_matrix import _fit, _font, _text_size
from .histogram import _COLOURS

__all__ = ["draw_bar_chart", "save_bar_chart_png"]

_Values = Sequence[float | None]


def _checked(values: _Values, name: str, length: int) -> list[float | None]:
    out: list[float | None] = []
    if len(values) != length:
        raise ValueError(f"{name} has {len(values)} values for {length} groups: give one per group (None for none).")
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif not math.isfinite(float(v)):
            raise ValueError(f"{name} holds a non-finite value {v!r}: give finite numbers or None.")
        else:
            out.append(float(v))
    return out


def draw_bar_chart(
    values: Mapping[str, _Values],
    group_names: Sequence[str],
    errors: Mapping[str, _Values] | None = None,
    title: str = "",
    ylabel: str = "",
    value_range: tuple[float, float] = (0.0, 1.0),
    size: tuple[int, int] = (960, 420),
) -> Image.Image:
    """A grouped bar chart: one group of bars per entry of ``group_names``, one bar (and colour) per series.

    Bars start at the bottom of ``value_range`` and are clipped to it; an error bar ``value ± error`` with caps is
    drawn over each bar that has an error. ``None`` (or NaN) draws no bar (e.g. an undefined metric). Group names
    are written vertically under the groups (shortened with an ellipsis when too long), the legend (series names)
    on the right. Series are drawn in the order given, with the colours of
    :func:`~medsyn_monai.visualize.save_histogram_png`.

    Args:
        values: ``{series: one value per group}``.
        group_names: names of the groups.
        errors: ``{series: one error (e.g. a standard deviation) per group}`` for some or all series.
        title: title drawn above the plot.
        ylabel: name of the y axis.
        value_range: ``(low, high)`` of the y axis.
        size: ``(width, height)`` of the image in pixels (at least ``(320, 240)``).

    Returns:
        the RGB image.

    Raises:
        ValueError: no series or groups, a series or error list of another length than ``group_names``, an error
            for an unknown series, a negative or non-finite value where a number is expected, an empty
            ``value_range`` or a too small ``size``.

    Example:
        >>> image = draw_bar_chart({"a": [0.5, 0.9], "b": [0.7, None]}, ["x", "y"], errors={"a": [0.1, 0.0]})
        >>> image.size, image.mode
        ((960, 420), 'RGB')
    """
    groups = [str(g) for g in group_names]
    if not values or not groups:
        raise ValueError("draw_bar_chart needs at least one series in values and one group in group_names.")
    series = {str(k): _checked(v, f"values[{k!r}]", len(groups)) for k, v in values.items()}
    errs: dict[str, list[float | None]] = {}
    for key, e in (errors or {}).items():
        if str(key) not in series:
            raise ValueError(f"errors names the series {key!r}, which is not in values ({list(series)}).")
        errs[str(key)] = _checked(e, f"errors[{key!r}]", len(groups))
        if any(x is not None and x < 0 for x in errs[str(key)]):
            raise ValueError(f"errors[{key!r}] holds a negative error: errors are half-widths, >= 0.")
    low, high = float(value_range[0]), float(value_range[1])
    if not low < high:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}.")
    width, height = int(size[0]), int(size[1])
    if width < 320 or height < 240:
        raise ValueError(f"size must be at least (320, 240) pixels, got {tuple(size)}.")

    font_size = max(10, height // 32)
    font, bold = _font(font_size), _font(int(font_size * 1.25))
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    swatch = font_size
    legend_labels = [_fit(draw, name, font, width // 4) for name in series]
    legend_w = swatch + 18 + max(_text_size(draw, t, font)[0] for t in legend_labels)
    max_label = height // 3
    group_labels = [_fit(draw, g, font, max_label) for g in groups]
    label_h = max(_text_size(draw, t, font)[0] for t in group_labels)
    left, right = 6 * font_size, int(legend_w) + 2 * font_size
    top, bottom = font_size + (2 * font_size if title else 0), int(label_h) + font_size
    plot_w, plot_h = width - left - right, height - top - bottom
    if plot_w < 40 or plot_h < 40:
        raise ValueError(f"size {tuple(size)} leaves no room for the plot: make the image larger.")

    def y_of(v: float) -> float:
        return top + plot_h * (1.0 - (min(max(v, low), high) - low) / (high - low))

    for i in range(1, 5):  # light grid lines behind the bars
        y = y_of(low + i * (high - low) / 4)
        draw.line((left + 1, y, left + plot_w, y), fill=(225, 225, 225))
    group_w = plot_w / len(groups)
    bar_w = 0.8 * group_w / len(series)
    for g in range(len(groups)):
        for k, (name, vals) in enumerate(series.items()):
            value = vals[g]
            if value is None:
                continue
            x0 = left + g * group_w + 0.1 * group_w + k * bar_w
            colour = _COLOURS[k % len(_COLOURS)]
            draw.rectangle((x0, y_of(value), x0 + bar_w - 1, y_of(low)), fill=colour, outline="black")
            err = errs.get(name, [None] * len(groups))[g]
            if err:
                xc, cap = x0 + bar_w / 2, max(2.0, bar_w / 4)
                y_lo, y_hi = y_of(value - err), y_of(value + err)
                draw.line((xc, y_lo, xc, y_hi), fill="black", width=1)
                for y in (y_lo, y_hi):
                    draw.line((xc - cap, y, xc + cap, y), fill="black", width=1)

    # axes, y ticks, y label
    for i in range(5):
        y = y_of(low + i * (high - low) / 4)
        draw.line((left - 4, y, left, y), fill="black")
        text = f"{low + i * (high - low) / 4:.3g}"
        w, h = _text_size(draw, text, font)
        draw.text((left - 6 - w, y - h / 2), text, fill="black", font=font)
    draw.line((left, top, left, top + plot_h, left + plot_w, top + plot_h), fill="black", width=1)
    if ylabel:
        w, h = _text_size(draw, ylabel, font)
        rotated = Image.new("RGB", (int(w) + 4, int(h) + 8), "white")
        ImageDraw.Draw(rotated).text((2, 2), ylabel, fill="black", font=font)
        rotated = rotated.rotate(90, expand=True)
        image.paste(rotated, (2, int(top + (plot_h - rotated.height) / 2)))
    # group names, written bottom-up under their groups
    for g, text in enumerate(group_labels):
        w, h = _text_size(draw, text, font)
        label = Image.new("RGB", (int(w) + 4, int(h) + 8), "white")
        ImageDraw.Draw(label).text((2, 2), text, fill="black", font=font)
        label = label.rotate(90, expand=True)
        xc = left + (g + 0.5) * group_w
        image.paste(label, (int(xc - label.width / 2), top + plot_h + 4))
    # legend right of the plot
    step = int(swatch * 1.5)
    x0, y0 = left + plot_w + font_size, top
    for k, text in enumerate(legend_labels):
        y = y0 + k * step
        draw.rectangle((x0, y, x0 + swatch, y + swatch), fill=_COLOURS[k % len(_COLOURS)], outline="black")
        draw.text((x0 + swatch + 6, y), text, fill="black", font=font)
    if title:
        text = _fit(draw, title, bold, width - 8)
        w, _ = _text_size(draw, text, bold)
        draw.text(((width - w) / 2, font_size // 2), text, fill="black", font=bold)
    return image


def save_bar_chart_png(
    values: Mapping[str, _Values],
    group_names: Sequence[str],
    path: str | Path,
    errors: Mapping[str, _Values] | None = None,
    title: str = "",
    ylabel: str = "",
    value_range: tuple[float, float] = (0.0, 1.0),
    size: tuple[int, int] = (960, 420),
) -> Path:
    """Write :func:`draw_bar_chart` as a PNG, atomically (parent folders are created); returns the path.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> p = save_bar_chart_png({"acc": [0.9, 0.8]}, ["real", "synthetic"], tempfile.mkdtemp() + "/b.png")
        >>> Image.open(p).size
        (960, 420)
    """
    image = draw_bar_chart(values, group_names, errors, title=title, ylabel=ylabel, value_range=value_range, size=size)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
