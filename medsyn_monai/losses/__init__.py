from .class_weights import ClassWeightedCrossEntropyLoss, class_weights
from .diffusion_loss import DiffusionLoss
from .feature_alignment import FeatureAlignmentLoss

__all__ = ["ClassWeightedCrossEntropyLoss", "DiffusionLoss", "FeatureAlignmentLoss", "class_weights"]
