"""Trainable projections between two feature spaces (the projection head of feature alignment)."""

from __future__ import annotations

from monai.networks.layers import Conv
from torch import nn

from medsyn_monai.utils.enums import AlignmentProjection

__all__ = ["feature_projection"]


def feature_projection(
    in_dim: int,
    out_dim: int,
    kind: str | AlignmentProjection = AlignmentProjection.LINEAR,
    hidden_dim: int | None = None,
    spatial_dims: int = 2,
) -> nn.Module:
    """A projection head ``(B, in_dim) -> (B, out_dim)`` (``"linear"``, ``"mlp"``) or ``(B, in_dim, *spatial) ->
    (B, out_dim, *spatial)`` (``"conv"``).

    - ``"linear"``: one ``nn.Linear`` (the feature-aligned diffusion seed method);
    - ``"mlp"``: three linear layers with SiLU between them (REPA, Yu et al. 2024, "Representation Alignment for
      Generation: Training Diffusion Transformers Is Easier Than You Think"), ``hidden_dim`` wide (default: the
      larger of the two dimensions);
    - ``"conv"``: one 3x3 convolution (zero padding, same size out) of a channel-first feature map, iREPA's projector
      (Singh et al., "What matters for Representation Alignment: Global Information or Spatial Structure?"): each
      location is projected from its 3x3 neighbourhood, so the projection keeps the map's spatial structure.
      ``hidden_dim`` is not used.

    ``"linear"`` and ``"mlp"`` act on the last dimension, so on feature maps they project every location on its own
    when the channels are moved last (what :class:`~medsyn_monai.losses.FeatureAlignmentLoss` does with
    ``spatial=True``).

    Args:
        in_dim: input features (channels).
        out_dim: output features (channels).
        kind: ``"linear"``, ``"mlp"`` or ``"conv"`` (:class:`~medsyn_monai.utils.enums.AlignmentProjection`).
        hidden_dim: width of the MLP.
        spatial_dims: spatial dimensions of the maps a ``"conv"`` projection takes (1, 2 or 3).

    Raises:
        ValueError: an unknown ``kind``, a non-positive dimension or ``spatial_dims`` not 1, 2 or 3.

    Example:
        >>> feature_projection(512, 64)
        Linear(in_features=512, out_features=64, bias=True)
        >>> [type(m).__name__ for m in feature_projection(8, 4, "mlp", hidden_dim=16)]
        ['Linear', 'SiLU', 'Linear', 'SiLU', 'Linear']
        >>> feature_projection(8, 4, "conv")
        Conv2d(8, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    """
    if str(kind) not in [k.value for k in AlignmentProjection]:
        raise ValueError(f"projection must be one of {[k.value for k in AlignmentProjection]}, got {kind!r}.")
    hidden = int(hidden_dim) if hidden_dim is not None else max(int(in_dim), int(out_dim))
    if min(int(in_dim), int(out_dim), hidden) < 1:
        raise ValueError(f"feature dimensions must be positive, got in {in_dim}, out {out_dim}, hidden {hidden_dim}.")
    kind = AlignmentProjection(kind)
    if kind == AlignmentProjection.LINEAR:
        return nn.Linear(int(in_dim), int(out_dim))
    if kind == AlignmentProjection.CONV:
        if int(spatial_dims) not in (1, 2, 3):
            raise ValueError(f"spatial_dims of a 'conv' projection must be 1, 2 or 3, got {spatial_dims}.")
        conv: type[nn.Module] = Conv[Conv.CONV, int(spatial_dims)]
        return conv(int(in_dim), int(out_dim), kernel_size=3, padding=1)
    return nn.Sequential(
        nn.Linear(int(in_dim), hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, int(out_dim))
    )
