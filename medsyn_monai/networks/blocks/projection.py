"""Trainable projections between two feature spaces (the projection head of feature alignment)."""

from __future__ import annotations

from torch import nn

from medsyn_monai.utils.enums import AlignmentProjection

__all__ = ["feature_projection"]


def feature_projection(
    in_dim: int,
    out_dim: int,
    kind: str | AlignmentProjection = AlignmentProjection.LINEAR,
    hidden_dim: int | None = None,
) -> nn.Module:
    """A projection head ``(B, in_dim) -> (B, out_dim)``.

    - ``"linear"``: one ``nn.Linear`` (the feature-aligned diffusion seed method);
    - ``"mlp"``: three linear layers with SiLU between them (REPA, Yu et al. 2024, "Representation Alignment for
      Generation: Training Diffusion Transformers Is Easier Than You Think"), ``hidden_dim`` wide (default: the
      larger of the two dimensions).

    Args:
        in_dim: input features.
        out_dim: output features.
        kind: ``"linear"`` or ``"mlp"`` (:class:`~medsyn_monai.utils.enums.AlignmentProjection`).
        hidden_dim: width of the MLP.

    Raises:
        ValueError: an unknown ``kind`` or a non-positive dimension.

    Example:
        >>> feature_projection(512, 64)
        Linear(in_features=512, out_features=64, bias=True)
        >>> [type(m).__name__ for m in feature_projection(8, 4, "mlp", hidden_dim=16)]
        ['Linear', 'SiLU', 'Linear', 'SiLU', 'Linear']
    """
    if str(kind) not in [k.value for k in AlignmentProjection]:
        raise ValueError(f"projection must be one of {[k.value for k in AlignmentProjection]}, got {kind!r}.")
    hidden = int(hidden_dim) if hidden_dim is not None else max(int(in_dim), int(out_dim))
    if min(int(in_dim), int(out_dim), hidden) < 1:
        raise ValueError(f"feature dimensions must be positive, got in {in_dim}, out {out_dim}, hidden {hidden_dim}.")
    if AlignmentProjection(kind) == AlignmentProjection.LINEAR:
        return nn.Linear(int(in_dim), int(out_dim))
    return nn.Sequential(
        nn.Linear(int(in_dim), hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, int(out_dim))
    )
