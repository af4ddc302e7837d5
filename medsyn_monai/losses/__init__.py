from .diffusion_loss import DiffusionLoss

__all__ = ["DiffusionLoss"]
