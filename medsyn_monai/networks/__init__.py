from .nets import ExpertClassifier, LightweightDiffusionUNet

__all__ = ["ExpertClassifier", "LightweightDiffusionUNet"]
