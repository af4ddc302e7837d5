"""Figures for reports (drawn with PIL; matplotlib is not a dependency)."""

from .bar_chart import draw_bar_chart, save_bar_chart_png
from .confusion_matrix import confusion_matrix_layout, save_confusion_matrix_png
from .histogram import save_histogram_png

__all__ = [
    "confusion_matrix_layout",
    "draw_bar_chart",
    "save_bar_chart_png",
    "save_confusion_matrix_png",
    "save_histogram_png",
]
