"""Cosine feature-alignment loss between a diffusion U-Net's features and a frozen expert's features (REPA-style)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medsyn_monai.networks.blocks.projection import feature_projection
from medsyn_monai.networks.utils import feature_channels
from medsyn_monai.utils.cli import as_bool
from medsyn_monai.utils.enums import AlignmentDirection, AlignmentProjection

__all__ = ["FeatureAlignmentLoss"]

_SPATIAL_NORM_EPS = 1e-6
_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}
_ADAPTIVE_POOL: dict[int, Callable[..., torch.Tensor]] = {
    1: F.adaptive_avg_pool1d,
    2: F.adaptive_avg_pool2d,
    3: F.adaptive_avg_pool3d,
}


def _pool(features: torch.Tensor) -> torch.Tensor:
    """Average a channel-first feature map ``(B, C, *spatial)`` over space to ``(B, C)`` (``(B, C)`` unchanged)."""
    if features.ndim < 2:
        raise ValueError(f"features must be (B, C[, *spatial]), got shape {tuple(features.shape)}.")
    return features.float().mean(dim=tuple(range(2, features.ndim))) if features.ndim > 2 else features.float()


def _resize(features: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """A channel-first map brought to the spatial ``size``: adaptive average pooling where it is at least as large in
    every dimension (each output location the mean of the input area it covers), else (bi/tri)linear interpolation
    (``align_corners=False``)."""
    size = tuple(int(s) for s in size)
    if tuple(features.shape[2:]) == size:
        return features
    if all(s >= t for s, t in zip(features.shape[2:], size, strict=True)):
        return _ADAPTIVE_POOL[len(size)](features, size)
    return F.interpolate(features, size=size, mode=_INTERPOLATION[len(size)], align_corners=False)


def _centre_over_space(features: torch.Tensor) -> torch.Tensor:
    """``features`` minus their mean over the spatial dimensions (per image and channel), computed relative to the
    first location so that a map constant over space gives exactly 0 (not rounding residues, whose direction the cosine
    would still measure)."""
    space = tuple(range(2, features.ndim))
    shifted = features - features.flatten(2)[..., :1].reshape(*features.shape[:2], *([1] * len(space)))
    return shifted - shifted.mean(space, keepdim=True)


class FeatureAlignmentLoss(nn.Module):
    """``L_align = mean_i (1 - cos(W_p(a_i), b_i))`` through a trainable projection ``W_p``.

    Feature-aligned diffusion (the seed method of the ``histo_feature_aligned`` bundle) adds this term to the
    denoising loss: the diffusion U-Net's features (pooled over space) are pulled towards the features a frozen
    expert classifier extracts from the noisy input. ``(a, b)`` is ``(expert, diffusion)`` features for
    ``direction="expert_to_diffusion"`` (the seed's code: expert features are projected to the diffusion feature
    size) or ``(diffusion, expert)`` for ``"diffusion_to_expert"`` (REPA, Yu et al. 2024, "Representation Alignment
    for Generation: Training Diffusion Transformers Is Easier Than You Think", with a 3-layer MLP,
    ``projection="mlp"``).

    **Spatial (token) alignment** (``spatial=True``): REPA aligns every patch token, not one pooled vector, and
    U-REPA (Tian et al. 2025, "U-REPA: Aligning Diffusion U-Nets to ViTs") does so for U-Nets. The U-Net's feature map
    ``(B, C, h, w)`` and the expert's feature map ``(B, E, h', w')`` (its last stage before pooling,
    :meth:`~medsyn_monai.networks.nets.FeatureExtractor.feature_map`) are compared location by location: the expert
    map is brought to the U-Net's ``h x w`` — by adaptive average pooling when it is at least as large (each location
    the mean of the area it covers, e.g. ViT tokens), else by bilinear interpolation (``align_corners=False``, e.g. the
    2 x 2 map of a ResNet at 64 px to a 16 x 16 U-Net map) — the ``a`` map is projected at every location
    (``"linear"`` and ``"mlp"`` location by location, ``"conv"`` from 3x3 neighbourhoods) and the loss is the mean
    over images and locations of ``1 - cos`` over the channels. Both directions give maps of the U-Net's size:
    ``(B, C, h, w)`` for ``expert_to_diffusion``, ``(B, E, h, w)`` for ``diffusion_to_expert``.

    **Spatial normalisation** (``spatial_norm``, spatial alignment only; on by default with ``projection="conv"``):
    iREPA (Singh et al., "What matters for Representation Alignment: Global Information or Spatial Structure?")
    normalises the target map over space. Here the target ``b`` map is standardised per image and channel over the
    locations (minus its spatial mean, divided by its spatial standard deviation) and the projected ``a`` map is
    centred per image and channel over the locations, so only the spatial structure is compared: a projection whose
    output is the same at every location (its bias, or any per-image constant) scores exactly 1, the shortcut is
    gone. The expert map must then have more than one location.

    The loss owns only the projection (:func:`~medsyn_monai.networks.blocks.feature_projection`): its parameters
    are what the optimizer must also train and the checkpoint must save. Where the features come from is the
    trainer's business (:class:`~medsyn_monai.engines.DiffusionTrainer` reads the U-Net's features with a
    :class:`~medsyn_monai.networks.utils.FeatureHook` and the expert's with a frozen
    :class:`~medsyn_monai.networks.nets.FeatureExtractor`: pooled, or its feature map when the loss is spatial).
    :meth:`project` and :meth:`compare` are the two halves of :meth:`forward`, so that a caller can also monitor the
    projected and target features (:meth:`batch_std`: a collapse to a constant projection shows as a standard
    deviation across the batch near 0).

    Args:
        expert_dim: length of the expert features (channels of the expert's map).
        diffusion_dim: channels of the diffusion features.
        projection: ``"linear"`` (default), ``"mlp"`` or ``"conv"`` (spatial alignment only), or a module mapping the
            ``a`` features to the size of ``b`` (it gets channel-first maps ``(B, C, *spatial)`` with ``spatial=True``,
            vectors otherwise).
        hidden_dim: width of the MLP projection.
        direction: ``"expert_to_diffusion"`` (default) or ``"diffusion_to_expert"``.
        center: subtract the batch mean from the projected and the target features before the cosine (a
            correlation across the batch; with ``spatial=True`` at every location). Without it (the seed method and
            REPA) the projection can make the loss vanish with a constant output, its bias, pointing along the mean
            of the other features, which carries no per-image information; with it only per-image variation counts.
            Needs batches of at least 2 images.
        spatial: align feature maps location by location instead of pooled vectors (see above; default ``False``).
        spatial_norm: normalise the maps over space before the cosine (see above); ``None`` (default): on for
            ``projection="conv"``, off otherwise. Only with ``spatial=True``.
        spatial_dims: spatial dimensions of the feature maps of a ``"conv"`` projection (2 for images);
            :meth:`between` takes the network's ``spatial_dims``.

    Raises:
        ValueError: unknown options, non-positive dimensions, ``projection="conv"`` or ``spatial_norm=True`` without
            ``spatial=True``.

    Example:
        >>> import torch
        >>> loss = FeatureAlignmentLoss(expert_dim=512, diffusion_dim=16)
        >>> value = loss(torch.randn(4, 16, 8, 8), torch.randn(4, 512))
        >>> 0.0 <= value.item() <= 2.0, sorted(loss.state_dict())
        (True, ['projection.bias', 'projection.weight'])
        >>> spatial = FeatureAlignmentLoss(512, 16, projection="conv", spatial=True)  # spatial_norm on
        >>> projected, target = spatial.project(torch.randn(4, 16, 8, 8), torch.randn(4, 512, 2, 2))
        >>> tuple(projected.shape), tuple(target.shape), spatial.spatial_norm
        ((4, 16, 8, 8), (4, 16, 8, 8), True)
    """

    def __init__(
        self,
        expert_dim: int,
        diffusion_dim: int,
        projection: str | AlignmentProjection | nn.Module = AlignmentProjection.LINEAR,
        hidden_dim: int | None = None,
        direction: str | AlignmentDirection = AlignmentDirection.EXPERT_TO_DIFFUSION,
        center: bool = False,
        spatial: bool = False,
        spatial_norm: bool | None = None,
        spatial_dims: int = 2,
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
        self.spatial = as_bool(spatial, "spatial")
        kind = None if isinstance(projection, nn.Module) else str(projection)
        if kind == AlignmentProjection.CONV and not self.spatial:
            raise ValueError(
                "projection='conv' convolves feature maps: it needs spatial=True (bundle: --align_spatial true); "
                "pooled features take projection='linear' or 'mlp'."
            )
        norm = as_bool(spatial_norm, "spatial_norm", allow_none=True)
        if norm and not self.spatial:
            raise ValueError(
                "spatial_norm=True normalises feature maps over space: it needs spatial=True (bundle: --align_spatial "
                "true); for pooled features use center=True against the constant-projection shortcut."
            )
        self.spatial_norm: bool = (self.spatial and kind == AlignmentProjection.CONV) if norm is None else norm
        if self.direction == AlignmentDirection.EXPERT_TO_DIFFUSION:
            in_dim, out_dim = self.expert_dim, self.diffusion_dim
        else:
            in_dim, out_dim = self.diffusion_dim, self.expert_dim
        if isinstance(projection, nn.Module):
            self.projection = projection
        else:
            self.projection = feature_projection(in_dim, out_dim, projection, hidden_dim, spatial_dims)
        # the built-in linear and MLP heads act on the last dimension: on maps they are applied location by location
        self._per_location = self.spatial and kind in (AlignmentProjection.LINEAR, AlignmentProjection.MLP)

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
                :func:`~medsyn_monai.networks.utils.feature_point`; ``"middle_block"``: the middle stage).
            image_shape: ``(C, *spatial)`` of one image, to measure undeclared channels.
            kwargs: other :class:`FeatureAlignmentLoss` arguments (``projection``, ``direction``, ``center``,
                ``spatial``, ...); ``spatial_dims`` defaults to the network's.

        Raises:
            ValueError: an expert without ``feature_dim``.
        """
        dim = getattr(expert, "feature_dim", None)
        if not isinstance(dim, int):
            raise ValueError(f"the expert ({type(expert).__name__}) declares no feature_dim: give expert_dim instead.")
        spatial_dims = getattr(network, "spatial_dims", None)
        if isinstance(spatial_dims, int):
            kwargs.setdefault("spatial_dims", spatial_dims)
        return cls(dim, feature_channels(network, align_module, image_shape), **kwargs)

    def extra_repr(self) -> str:
        text = (
            f"expert_dim={self.expert_dim}, diffusion_dim={self.diffusion_dim}, direction={self.direction.value!r}, "
            f"center={self.center}"
        )
        return text + (f", spatial=True, spatial_norm={self.spatial_norm}" if self.spatial else "")

    def _project(self, features: torch.Tensor) -> torch.Tensor:
        if self._per_location:
            return self.projection(features.movedim(1, -1)).movedim(-1, 1).float()
        return self.projection(features).float()

    def _vectors(self, diffusion_features: torch.Tensor, expert_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        diff = _pool(diffusion_features)
        expert = expert_features.detach().float().reshape(expert_features.shape[0], -1).to(diff.device)
        if diff.shape[1] != self.diffusion_dim:
            raise ValueError(f"diffusion features have {diff.shape[1]} channels, expected {self.diffusion_dim}.")
        if expert.shape[1] != self.expert_dim:
            raise ValueError(f"expert features have {expert.shape[1]} values, expected {self.expert_dim}.")
        if expert.shape[0] != diff.shape[0]:
            raise ValueError(f"{diff.shape[0]} diffusion feature vectors but {expert.shape[0]} expert ones.")
        return diff, expert

    def _maps(self, diffusion_features: torch.Tensor, expert_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if diffusion_features.ndim < 3:
            shape = tuple(diffusion_features.shape)
            raise ValueError(f"spatial=True needs the U-Net's feature map (B, C, *spatial), got shape {shape}.")
        if expert_features.ndim != diffusion_features.ndim:
            raise ValueError(
                f"spatial=True needs the expert's feature map (B, E, *spatial) with {diffusion_features.ndim - 2} "
                f"spatial dimensions like the U-Net's, got shape {tuple(expert_features.shape)}: give the expert's map "
                "(FeatureExtractor.feature_map, which the DiffusionTrainer calls for a spatial loss), or use "
                "spatial=False to align pooled features."
            )
        diff = diffusion_features.float()
        expert = expert_features.detach().float().to(diff.device)
        if diff.shape[1] != self.diffusion_dim:
            raise ValueError(f"diffusion features have {diff.shape[1]} channels, expected {self.diffusion_dim}.")
        if expert.shape[1] != self.expert_dim:
            raise ValueError(f"the expert's feature map has {expert.shape[1]} channels, expected {self.expert_dim}.")
        if expert.shape[0] != diff.shape[0]:
            raise ValueError(f"{diff.shape[0]} diffusion feature maps but {expert.shape[0]} expert ones.")
        if self.spatial_norm and min(math.prod(expert.shape[2:]), math.prod(diff.shape[2:])) < 2:
            raise ValueError(
                f"spatial_norm needs feature maps of more than one location, got the U-Net's {tuple(diff.shape[2:])} "
                f"and the expert's {tuple(expert.shape[2:])}: after normalisation over space nothing is left to align. "
                "Give the expert larger inputs (a ResNet's map is 1/32 of its input size: train it with a larger "
                "expert_input_size), align an earlier U-Net module, or set spatial_norm=False."
            )
        return diff, _resize(expert, diff.shape[2:])

    def project(
        self, diffusion_features: torch.Tensor, expert_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The projected features ``W_p(a)`` and the target features ``b`` of one batch (before any centring or
        normalisation), as float32.

        Args:
            diffusion_features: ``(B, diffusion_dim, *spatial)`` U-Net features (pooled here unless ``spatial``).
            expert_features: ``(B, expert_dim)`` expert features, or with ``spatial=True`` the expert's feature map
                ``(B, expert_dim, *spatial')`` (resized here to the U-Net's spatial size); constants: no gradient
                flows into the expert.

        Returns:
            ``(projected, target)``: ``(B, D)`` vectors, or ``(B, D, *spatial)`` maps of the U-Net's size with
            ``spatial=True``; ``D`` is ``diffusion_dim`` for ``expert_to_diffusion``, ``expert_dim`` otherwise.
        """
        if self.spatial:
            diff, expert = self._maps(diffusion_features, expert_features)
        else:
            diff, expert = self._vectors(diffusion_features, expert_features)
        if self.direction == AlignmentDirection.EXPERT_TO_DIFFUSION:
            return self._project(expert), diff
        return self._project(diff), expert

    def compare(self, projected: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``mean(1 - cos(projected, target))`` over images (and locations), after the spatial normalisation and the
        batch centring that the options ask for.

        Args:
            projected: the projected features of :meth:`project`.
            target: the target features of :meth:`project`.

        Returns:
            scalar loss in ``[0, 2]``.
        """
        if self.spatial_norm:
            space = tuple(range(2, projected.ndim))
            projected, target = _centre_over_space(projected), _centre_over_space(target)
            target = target / (target.pow(2).mean(space, keepdim=True) + _SPATIAL_NORM_EPS).sqrt()
        if self.center:
            if projected.shape[0] < 2:
                raise ValueError("center=True needs batches of at least 2 images (the batch mean is subtracted).")
            projected, target = projected - projected.mean(0, keepdim=True), target - target.mean(0, keepdim=True)
        return (1.0 - F.cosine_similarity(projected, target, dim=1, eps=1e-8)).mean()

    @staticmethod
    def batch_std(features: torch.Tensor) -> torch.Tensor:
        """The standard deviation of ``features`` across the batch (dimension 0), averaged over the feature
        dimensions (and locations): near 0 when the features are the same for every image, e.g. a projection that
        collapsed to a constant output.

        Args:
            features: ``(B, D[, *spatial])`` with ``B >= 2``.

        Raises:
            ValueError: fewer than 2 images.

        Example:
            >>> import torch
            >>> FeatureAlignmentLoss.batch_std(torch.ones(4, 3)).item(), FeatureAlignmentLoss.batch_std(
            ...     torch.tensor([[0.0], [2.0]])).item()
            (0.0, 1.4142135381698608)
        """
        if features.shape[0] < 2:
            raise ValueError(f"a standard deviation across the batch needs at least 2 images, got {features.shape[0]}.")
        return features.detach().float().std(dim=0).mean()

    def forward(self, diffusion_features: torch.Tensor, expert_features: torch.Tensor) -> torch.Tensor:
        """Alignment loss of one batch (:meth:`compare` of :meth:`project`).

        Args:
            diffusion_features: ``(B, diffusion_dim[, *spatial])`` U-Net features (pooled here unless ``spatial``).
            expert_features: ``(B, expert_dim)`` expert features, or the expert's map ``(B, expert_dim, *spatial')``
                with ``spatial=True`` (constants: no gradient flows into the expert).

        Returns:
            scalar loss in ``[0, 2]``, differentiable with respect to the diffusion features and the projection.
        """
        return self.compare(*self.project(diffusion_features, expert_features))
