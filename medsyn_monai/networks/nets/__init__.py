from .classifiers import ExpertClassifier
from .feature_extractor import FeatureExtractor
from .lightweight_unet import LightweightDiffusionUNet

__all__ = ["ExpertClassifier", "FeatureExtractor", "LightweightDiffusionUNet"]
