from .expert import (
    BestCheckpointHandler,
    ClassificationEvaluator,
    ExpertPrepareBatch,
    class_weights,
    evaluate_classifier,
)
from .prepare_batch import DiffusionPrepareBatch
from .sampler import DiffusionSampler
from .trainer import DiffusionTrainer

__all__ = [
    "BestCheckpointHandler",
    "ClassificationEvaluator",
    "DiffusionPrepareBatch",
    "DiffusionSampler",
    "DiffusionTrainer",
    "ExpertPrepareBatch",
    "class_weights",
    "evaluate_classifier",
]
