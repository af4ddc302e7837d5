from .ablation import AblationRunner
from .augmentation import SyntheticAugmentationEvaluator
from .classifier_training import ImageLabelDataset, TensorPairDataset, fit_classifier
from .evaluation import SyntheticImageEvaluator
from .expert import (
    BestCheckpointHandler,
    ClassificationEvaluator,
    ExpertPrepareBatch,
    class_weights,
    evaluate_classifier,
)
from .fewshot import FewShotSetup, add_class_slot, class_embedding_keys
from .generation_accuracy import GenerationAccuracyEvaluator
from .guidance_sweep import GuidanceSweep
from .prepare_batch import DiffusionPrepareBatch
from .pretraining import SyntheticPretrainingEvaluator
from .prior_images import PriorImageGenerator
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
    "FewShotSetup",
    "GenerationAccuracyEvaluator",
    "GuidanceSweep",
    "ImageLabelDataset",
    "PriorImageGenerator",
    "SyntheticAugmentationEvaluator",
    "SyntheticImageEvaluator",
    "SyntheticPretrainingEvaluator",
    "TensorPairDataset",
    "add_class_slot",
    "class_embedding_keys",
    "class_weights",
    "evaluate_classifier",
    "fit_classifier",
]
