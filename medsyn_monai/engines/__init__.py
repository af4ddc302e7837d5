"""Ignite workflows: the diffusion training engine, the classifier evaluation engine, and their batch preparation."""

from .evaluator import REPORT_SCALARS, ClassificationEvaluator
from .prepare_batch import DiffusionPrepareBatch, ExpertPrepareBatch
from .trainer import DiffusionTrainer

__all__ = [
    "REPORT_SCALARS",
    "ClassificationEvaluator",
    "DiffusionPrepareBatch",
    "DiffusionTrainer",
    "ExpertPrepareBatch",
]
