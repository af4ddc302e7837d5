"""Whole applications built from the building blocks, as in :mod:`monai.apps`: synthetic demo data, sampling from a
trained model, evaluation studies of synthetic images, few-shot fine-tuning, export (PNG, NIfTI, DICOM marked synthetic,
with a provenance manifest) and audits (memorisation, data leakage).

The building blocks (``data``, ``transforms``, ``networks``, ``engines``, ``handlers``, ...) never import from here.
"""

from . import audit, demo, evaluation, export, fewshot, generation

__all__ = ["audit", "demo", "evaluation", "export", "fewshot", "generation"]
