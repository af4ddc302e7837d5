from .diffusion_inferer import ConditionalDiffusionInferer

__all__ = ["ConditionalDiffusionInferer"]
