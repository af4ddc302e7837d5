"""Whole applications built from the building blocks, as in :mod:`monai.apps`: synthetic demo data, sampling from a
trained model, evaluation studies of synthetic images, and few-shot fine-tuning.

The building blocks (``data``, ``transforms``, ``networks``, ``engines``, ``handlers``, ...) never import from here.
"""

from . import demo, evaluation, fewshot, generation

__all__ = ["demo", "evaluation", "fewshot", "generation"]
