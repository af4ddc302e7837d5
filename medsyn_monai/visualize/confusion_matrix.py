"""Confusion-matrix figure drawn with PIL (matplotlib is not a dependency)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = ["save_confusion_matrix_png", "confusion_matrix_layout"]

_LOW = np.array([247, 251, 255], dtype=np.float64)  # colour of an empty cell (matplotlib "Blues" ends)
_HIGH = np.array([8, 48, 107], dtype=np.float64)  # colour of a cell holding its whole row


def confusion_matrix_layout(num_classes: int, cell_size: int = 96, title: str = "") -> dict[str, int]:
    """Pixel layout of :func:`save_confusion_matrix_png`.

    Args:
        num_classes: number of classes ``C``.
        cell_size: side of one cell in pixels (>= 64).
        title: the figure title (an empty title takes no room).

    Returns:
        ``{"left", "top", "cell", "width", "height"}``: the grid's top-left corner, the cell side and the image size
        ``width = left + C * cell + cell // 4``, ``height = top + C * cell + cell // 4`` with ``left = 2 * cell``
        and ``top = 5 * cell // 8`` (plus ``cell // 3`` with a title).

    Example:
        >>> confusion_matrix_layout(3, cell_size=80, title="val")
        {'left': 160, 'top': 76, 'cell': 80, 'width': 420, 'height': 336}
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    if cell_size < 64:
        raise ValueError(f"cell_size must be >= 64 pixels, got {cell_size}.")
    pad = cell_size // 4
    left = 2 * cell_size
    top = (5 * cell_size) // 8 + (cell_size // 3 if title else 0)
    return {
        "left": left,
        "top": top,
        "cell": cell_size,
        "width": left + num_classes * cell_size + pad,
        "height": top + num_classes * cell_size + pad,
    }


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: Any) -> tuple[float, float]:
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    return x1 - x0, y1 - y0


def _fit(draw: ImageDraw.ImageDraw, text: str, font, max_width: int) -> str:
    """``text``, shortened with an ellipsis to at most ``max_width`` pixels."""
    if _text_size(draw, text, font)[0] <= max_width:
        return text
    while text and _text_size(draw, text + "…", font)[0] > max_width:
        text = text[:-1]
    return text + "…"


def save_confusion_matrix_png(
    matrix: torch.Tensor | np.ndarray | Sequence[Sequence[float]],
    class_names: Sequence[str],
    path: str | Path,
    title: str = "",
    cell_size: int = 96,
) -> Path:
    """Draw a confusion matrix as a PNG: coloured cells with counts and row-normalised percentages.

    Rows are the true classes, columns the predicted classes (as
    :func:`~medsyn_monai.metrics.classification.classification_report`). Each cell shows its count and its share of
    the row (the recall of the class on the diagonal); its colour goes from white (0 %) to dark blue (100 %). Class
    names label both axes (shortened with an ellipsis when too long); the size of the image is given by
    :func:`confusion_matrix_layout`.

    Args:
        matrix: ``(C, C)`` non-negative counts.
        class_names: ``C`` class names.
        path: output file (parent folders are created).
        title: title drawn above the matrix.
        cell_size: side of one cell in pixels (>= 64).

    Returns:
        the path of the written PNG.

    Raises:
        ValueError: a matrix that is not square, negative or non-finite, or a wrong number of class names.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> p = save_confusion_matrix_png([[5, 1], [0, 6]], ["normal", "lesion"], tempfile.mkdtemp() + "/cm.png")
        >>> Image.open(p).size
        (408, 276)
    """
    m = (
        matrix.detach().cpu().double().numpy()
        if isinstance(matrix, torch.Tensor)
        else np.asarray(matrix, dtype=np.float64)
    )
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
        raise ValueError(f"matrix must be a non-empty square (C, C) array, got shape {m.shape}.")
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        raise ValueError("matrix must hold finite, non-negative counts.")
    n = m.shape[0]
    names = [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f"class_names has {len(names)} entries for a {n} x {n} matrix.")
    lay = confusion_matrix_layout(n, cell_size, title)
    cell, left, top = lay["cell"], lay["left"], lay["top"]
    font_size = max(10, cell // 7)
    font, bold = _font(font_size), _font(int(font_size * 1.25))
    image = Image.new("RGB", (lay["width"], lay["height"]), "white")
    draw = ImageDraw.Draw(image)

    row_sums = m.sum(axis=1, keepdims=True)
    fractions = np.divide(m, row_sums, out=np.zeros_like(m), where=row_sums > 0)
    integral = np.all(m == np.round(m))
    for i in range(n):
        for j in range(n):
            f = float(fractions[i, j])
            colour = tuple(int(round(c)) for c in _LOW + f * (_HIGH - _LOW))
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle((x0, y0, x0 + cell - 1, y0 + cell - 1), fill=colour, outline=(160, 160, 160))
            ink = "white" if f > 0.5 else "black"
            count = f"{int(m[i, j])}" if integral else f"{m[i, j]:.2f}"
            for text, fnt, dy in ((count, bold, -0.55), (f"{100 * f:.1f}%", font, 0.65)):
                w, h = _text_size(draw, text, fnt)
                draw.text((x0 + (cell - w) / 2, y0 + cell / 2 + dy * font_size - h / 2), text, fill=ink, font=fnt)

    # column (predicted) labels and axis name above the grid
    axis_gap = int(font_size * 1.8)
    for j, name in enumerate(names):
        text = _fit(draw, name, font, cell - 6)
        w, _ = _text_size(draw, text, font)
        draw.text((left + j * cell + (cell - w) / 2, top - axis_gap), text, fill="black", font=font)
    w, _ = _text_size(draw, "Predicted", bold)
    draw.text((left + (n * cell - w) / 2, top - 2 * axis_gap), "Predicted", fill="black", font=bold)
    # row (true) labels, right-aligned left of the grid, and the rotated axis name
    label_room = left - 2 * font_size - 12
    for i, name in enumerate(names):
        text = _fit(draw, name, font, label_room)
        w, h = _text_size(draw, text, font)
        draw.text((left - 8 - w, top + i * cell + (cell - h) / 2), text, fill="black", font=font)
    w, h = _text_size(draw, "True", bold)
    label = Image.new("RGB", (int(w) + 4, int(h) + 8), "white")
    ImageDraw.Draw(label).text((2, 2), "True", fill="black", font=bold)
    label = label.rotate(90, expand=True)
    image.paste(label, (4, int(top + (n * cell - label.height) / 2)))
    if title:
        text = _fit(draw, title, bold, lay["width"] - 8)
        w, _ = _text_size(draw, text, bold)
        draw.text(((lay["width"] - w) / 2, cell // 8), text, fill="black", font=bold)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
