from .lightweight_unet import LightweightDiffusionUNet

__all__ = ["LightweightDiffusionUNet"]
