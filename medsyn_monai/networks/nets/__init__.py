from .classifiers import ExpertClassifier
from .lightweight_unet import LightweightDiffusionUNet

__all__ = ["ExpertClassifier", "LightweightDiffusionUNet"]
