from .class_weights import class_weights
from .diffusion_loss import DiffusionLoss
from .feature_alignment import FeatureAlignmentLoss

__all__ = ["DiffusionLoss", "FeatureAlignmentLoss", "class_weights"]
