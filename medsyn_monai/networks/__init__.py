from .nets import ExpertClassifier, FeatureExtractor, LightweightDiffusionUNet

__all__ = ["ExpertClassifier", "FeatureExtractor", "LightweightDiffusionUNet"]
