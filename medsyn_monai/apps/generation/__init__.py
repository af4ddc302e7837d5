"""Sampling synthetic images from a trained diffusion model."""

from .sampler import DiffusionSampler, SampleGenerator

__all__ = ["DiffusionSampler", "SampleGenerator"]
