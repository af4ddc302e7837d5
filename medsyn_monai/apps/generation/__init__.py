"""Sampling synthetic images from a trained diffusion model."""

from .filtering import ConfidenceFilteredGenerator
from .sampler import DiffusionSampler, SampleGenerator

__all__ = ["ConfidenceFilteredGenerator", "DiffusionSampler", "SampleGenerator"]
