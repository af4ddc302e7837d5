"""medsyn_monai: diffusion models for medical image synthesis, built on MONAI."""

__version__ = "0.1.0"

__all__ = ["__version__"]
