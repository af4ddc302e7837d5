"""Evaluation studies of synthetic images: distribution metrics and report, generation accuracy, guidance sweep,
ablation, and downstream classifiers trained with synthetic data (augmentation, pre-training, the utility table)."""

from .ablation import AblationStudy
from .augmentation import SyntheticAugmentationStudy
from .classifier import (
    evaluate_classifier,
    fit_classifier,
    generate_class_images,
    scaled_class_counts,
    stratified_indices,
)
from .expert import ExpertTraining
from .generation_accuracy import GenerationAccuracyStudy
from .guidance_sweep import GuidanceSweep
from .pretraining import SyntheticPretrainingStudy
from .synthetic_images import SyntheticImageStudy
from .utility import ClassifierUtilityStudy

__all__ = [
    "AblationStudy",
    "ClassifierUtilityStudy",
    "ExpertTraining",
    "GenerationAccuracyStudy",
    "GuidanceSweep",
    "SyntheticAugmentationStudy",
    "SyntheticImageStudy",
    "SyntheticPretrainingStudy",
    "evaluate_classifier",
    "fit_classifier",
    "generate_class_images",
    "scaled_class_counts",
    "stratified_indices",
]
