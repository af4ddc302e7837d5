from .class_conditioned_unet import ClassConditionedDiffusionUNet
from .classifiers import ExpertClassifier
from .feature_extractor import FeatureExtractor
from .lightweight_unet import LightweightDiffusionUNet

__all__ = ["ClassConditionedDiffusionUNet", "ExpertClassifier", "FeatureExtractor", "LightweightDiffusionUNet"]
