from .ablation import AblationRunner
from .evaluation import SyntheticImageEvaluator
from .expert import (
    BestCheckpointHandler,
    ClassificationEvaluator,
    ExpertPrepareBatch,
    class_weights,
    evaluate_classifier,
)
from .generation_accuracy import GenerationAccuracyEvaluator
from .prepare_batch import DiffusionPrepareBatch
from .sampler import DiffusionSampler
from .trainer import DiffusionTrainer

__all__ = [
    "AblationRunner",
    "BestCheckpointHandler",
    "ClassificationEvaluator",
    "DiffusionPrepareBatch",
    "DiffusionSampler",
    "DiffusionTrainer",
    "ExpertPrepareBatch",
    "GenerationAccuracyEvaluator",
    "SyntheticImageEvaluator",
    "class_weights",
    "evaluate_classifier",
]
