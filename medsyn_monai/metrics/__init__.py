"""Offline metrics for synthetic images: feature-distribution distances, diversity and statistical tests."""

from __future__ import annotations

from .classification import classification_report, confusion_matrix
from .distribution_tests import class_frequency_test, intensity_histogram_test, js_divergence, kl_divergence
from .fid import frechet_distance, gaussian_frechet_distance
from .impulse_noise import impulse_noise_rate
from .kid import KernelInceptionDistance
from .nearest_neighbour import NearestNeighbours, aligned_correlation_distance, feature_cosine_distance
from .precision_recall import PrecisionRecallDensityCoverage
from .ssim_diversity import MAX_ALL_PAIRS, cross_set_ssim, intra_set_ssim

__all__ = [
    "KernelInceptionDistance",
    "MAX_ALL_PAIRS",
    "NearestNeighbours",
    "PrecisionRecallDensityCoverage",
    "class_frequency_test",
    "classification_report",
    "confusion_matrix",
    "cross_set_ssim",
    "aligned_correlation_distance",
    "feature_cosine_distance",
    "frechet_distance",
    "gaussian_frechet_distance",
    "impulse_noise_rate",
    "intensity_histogram_test",
    "intra_set_ssim",
    "js_divergence",
    "kl_divergence",
]
