from . import blocks, nets, schedulers, utils
from .nets import ClassConditionedDiffusionUNet, ExpertClassifier, FeatureExtractor, LightweightDiffusionUNet

__all__ = [
    "ClassConditionedDiffusionUNet",
    "ExpertClassifier",
    "FeatureExtractor",
    "LightweightDiffusionUNet",
    "blocks",
    "nets",
    "schedulers",
    "utils",
]
