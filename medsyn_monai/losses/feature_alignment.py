"""Cosine feature-alignment loss between a diffusion U-Net's features and a frozen expert's features (REPA-style)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medsyn_monai.networks.blocks.projection import feature_projection
from medsyn_monai.networks.utils import feature_channels
from medsyn_monai.utils.cli import as_bool
from medsyn_monai.utils.enums import AlignmentDirection, AlignmentProjection

__all__ = ["FeatureAlignmentLoss"]


def _pool(features: torch.Tensor) -> torch.Tensor:
    """Average a channel-first feature map ``(B, C, *spatial)`` over space to ``(B, C)`` (``(B, C)`` unchanged)."""
    if features.ndim < 2:
        raise ValueError(f"features must be (B, C[, *spatial]), got shape {tuple(features.shape)}.")
    return features.float().mean(dim=tuple(range(2, features.ndim))) if features.ndim > 2 else features.float()


class FeatureAlignmentLoss(nn.Module):
    """``L_align = mean_i (1 - cos(W_p(a_i), b_i))`` through a trainable projection ``W_p``.

    Feature-aligned diffusion (the seed method of the ``histo_feature_aligned`` bundle) adds this term to the
    denoising loss: the diffusion U-Net's features (pooled over space) are pulled towards the features a frozen
    expert classifier extracts from the noisy input. ``(a, b)`` is ``(expert, diffusion)`` features for
    ``direction="expert_to_diffusion"`` (the seed's code: expert features are projected to the diffusion feature
    size) or ``(diffusion, expert)`` for ``"diffusion_to_expert"`` (REPA, Yu et al. 2024, "Representation Alignment
    for Generation: Training Diffusion Transformers Is Easier Than You Think", with a 3-layer MLP,
    ``projection="mlp"``).

    The loss owns only the projection (:func:`~medsyn_monai.networks.blocks.feature_projection`): its parameters
    are what the optimizer must also train and the checkpoint must save. Where the features come from is the
    trainer's business (:class:`~medsyn_monai.engines.DiffusionTrainer` reads the U-Net's features with a
    :class:`~medsyn_monai.networks.utils.FeatureHook` and the expert's with a frozen
    :class:`~medsyn_monai.networks.nets.FeatureExtractor`).

    Args:
        expert_dim: length of the expert features.
        diffusion_dim: channels of the diffusion features.
        projection: ``"linear"`` (default) or ``"mlp"``, or a module mapping the ``a`` features to the size of
            ``b``.
        hidden_dim: width of the MLP projection.
        direction: ``"expert_to_diffusion"`` (default) or ``"diffusion_to_expert"``.
        center: subtract the batch mean from the projected and the target features before the cosine (a
            correlation across the batch). Without it (the seed method and REPA) the projection can make the loss
            vanish with a constant output, its bias, pointing along the mean of the other features, which carries no
            per-image information; with it only per-image variation counts. Needs batches of at least 2 images.

    Raises:
        ValueError: unknown options or non-positive dimensions.

    Example:
        >>> import torch
        >>> loss = FeatureAlignmentLoss(expert_dim=512, diffusion_dim=16)
        >>> value = loss(torch.randn(4, 16, 8, 8), torch.randn(4, 512))
        >>> 0.0 <= value.item() <= 2.0, sorted(loss.state_dict())
        (True, ['projection.bias', 'projection.weight'])
    """

    def __init__(
        self,
        expert_dim: int,
        diffusion_dim: int,
        projection: str | AlignmentProjection | nn.Module = AlignmentProjection.LINEAR,
        hidden_dim: int | None = None,
        direction: str | AlignmentDirection = AlignmentDirection.EXPERT_TO_DIFFUSION,
        center: bool = False,
    ) -> None:
        super().__init__()
        if str(direction) not in [d.value for d in AlignmentDirection]:
            raise ValueError(f"direction must be one of {[d.value for d in AlignmentDirection]}, got {direction!r}.")
        if min(int(expert_dim), int(diffusion_dim)) < 1:
            raise ValueError(f"feature dimensions must be positive, got {diffusion_dim} and {expert_dim}.")
        self.expert_dim = int(expert_dim)
        self.diffusion_dim = int(diffusion_dim)
        self.direction = AlignmentDirection(direction)
        self.center = as_bool(center, "center")
        if self.direction == AlignmentDirection.EXPERT_TO_DIFFUSION:
            in_dim, out_dim = self.expert_dim, self.diffusion_dim
        else:
            in_dim, out_dim = self.diffusion_dim, self.expert_dim
        if isinstance(projection, nn.Module):
            self.projection = projection
        else:
            self.projection = feature_projection(in_dim, out_dim, projection, hidden_dim)

    @classmethod
    def between(
        cls,
        expert: nn.Module,
        network: nn.Module,
        align_module: str | None = None,
        image_shape: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> FeatureAlignmentLoss:
        """The loss sized for aligning ``network``'s features at ``align_module`` with ``expert``'s features.

        Args:
            expert: the expert features (with ``feature_dim``, e.g. a
                :class:`~medsyn_monai.networks.nets.FeatureExtractor` of an expert classifier).
            network: the diffusion network.
            align_module: the aligned module (``None``: the default point,
                :func:`~medsyn_monai.networks.utils.feature_point`).
            image_shape: ``(C, *spatial)`` of one image, to measure undeclared channels.
            kwargs: other :class:`FeatureAlignmentLoss` arguments (``projection``, ``direction``, ``center``, ...).

        Raises:
            ValueError: an expert without ``feature_dim``.
        """
        dim = getattr(expert, "feature_dim", None)
        if not isinstance(dim, int):
            raise ValueError(f"the expert ({type(expert).__name__}) declares no feature_dim: give expert_dim instead.")
        return cls(dim, feature_channels(network, align_module, image_shape), **kwargs)

    def extra_repr(self) -> str:
        return (
            f"expert_dim={self.expert_dim}, diffusion_dim={self.diffusion_dim}, direction={self.direction.value!r}, "
            f"center={self.center}"
        )

    def forward(self, diffusion_features: torch.Tensor, expert_features: torch.Tensor) -> torch.Tensor:
        """Alignment loss of one batch.

        Args:
            diffusion_features: ``(B, diffusion_dim[, *spatial])`` U-Net features (pooled here).
            expert_features: ``(B, expert_dim)`` expert features (constants: no gradient flows into the expert).

        Returns:
            scalar loss in ``[0, 2]``, differentiable with respect to the diffusion features and the projection.
        """
        diff = _pool(diffusion_features)
        expert = expert_features.detach().float().reshape(expert_features.shape[0], -1).to(diff.device)
        if diff.shape[1] != self.diffusion_dim:
            raise ValueError(f"diffusion features have {diff.shape[1]} channels, expected {self.diffusion_dim}.")
        if expert.shape[1] != self.expert_dim:
            raise ValueError(f"expert features have {expert.shape[1]} values, expected {self.expert_dim}.")
        if expert.shape[0] != diff.shape[0]:
            raise ValueError(f"{diff.shape[0]} diffusion feature vectors but {expert.shape[0]} expert ones.")
        if self.direction == AlignmentDirection.EXPERT_TO_DIFFUSION:
            projected, target = self.projection(expert).float(), diff
        else:
            projected, target = self.projection(diff).float(), expert
        if self.center:
            if projected.shape[0] < 2:
                raise ValueError("center=True needs batches of at least 2 images (the batch mean is subtracted).")
            projected, target = projected - projected.mean(0, keepdim=True), target - target.mean(0, keepdim=True)
        return (1.0 - F.cosine_similarity(projected, target, dim=1, eps=1e-8)).mean()
