from .class_conditioned_unet import ClassConditionedDiffusionUNet
from .classifiers import ExpertClassifier
from .factory import network_config, network_from_config
from .feature_extractor import FeatureExtractor
from .lightweight_unet import LightweightDiffusionUNet

__all__ = [
    "ClassConditionedDiffusionUNet",
    "ExpertClassifier",
    "FeatureExtractor",
    "LightweightDiffusionUNet",
    "network_config",
    "network_from_config",
]
