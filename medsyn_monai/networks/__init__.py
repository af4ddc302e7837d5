from .nets import LightweightDiffusionUNet

__all__ = ["LightweightDiffusionUNet"]
