from .nets import ClassConditionedDiffusionUNet, ExpertClassifier, FeatureExtractor, LightweightDiffusionUNet

__all__ = ["ClassConditionedDiffusionUNet", "ExpertClassifier", "FeatureExtractor", "LightweightDiffusionUNet"]
