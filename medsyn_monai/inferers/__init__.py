from .diffusion_inferer import ConditionalDiffusionInferer, rescale_guidance

__all__ = ["ConditionalDiffusionInferer", "rescale_guidance"]
