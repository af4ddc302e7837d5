"""Figures for reports (drawn with PIL; matplotlib is not a dependency)."""

from .confusion_matrix import confusion_matrix_layout, save_confusion_matrix_png
from .histogram import save_histogram_png

__all__ = ["confusion_matrix_layout", "save_confusion_matrix_png", "save_histogram_png"]
