"""Pixel loss between the diffusion network's output and its target."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from medsyn_monai.utils.enums import LossType

__all__ = ["DiffusionLoss"]


class DiffusionLoss(nn.Module):
    """Mean squared (``"l2"``, the DDPM objective of Ho et al. 2020) or mean absolute (``"l1"``) error.

    The target is whatever :class:`~medsyn_monai.engines.DiffusionPrepareBatch` produced for the scheduler's
    prediction type (noise, velocity or clean image). The chest X-ray seed method trains with L1.

    Args:
        loss_type: ``"l2"`` or ``"l1"``.
        reduction: ``"mean"`` (one scalar over every element) or ``"none"``: one value per sample, the mean over all
            non-batch axes, shape ``(B,)``, e.g. for per-sample loss weights
            (:class:`~medsyn_monai.engines.DiffusionTrainer`'s ``sample_weight_key``). The mean of the ``"none"``
            values equals the ``"mean"`` value.

    Raises:
        ValueError: unknown ``loss_type`` or ``reduction``; (when called) prediction and target of different shapes.

    Example:
        >>> import torch
        >>> DiffusionLoss("l1")(torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)).item()
        1.0
        >>> target = torch.tensor([1.0, 2.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
        >>> DiffusionLoss(reduction="none")(torch.zeros(2, 1, 2, 2), target)
        tensor([1., 4.])
    """

    def __init__(self, loss_type: str | LossType = LossType.L2, reduction: str = "mean") -> None:
        super().__init__()
        if str(loss_type) not in [t.value for t in LossType]:
            raise ValueError(f"loss_type must be one of {[t.value for t in LossType]}, got {loss_type!r}.")
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}.")
        self.loss_type = LossType(loss_type)
        self.reduction = reduction

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss between ``prediction`` and ``target`` of equal shape ``(B, ...)``: a scalar, or ``(B,)`` values."""
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape.")
        prediction, target = prediction.float(), target.float()
        if self.reduction == "none":
            fn = F.l1_loss if self.loss_type == LossType.L1 else F.mse_loss
            return fn(prediction, target, reduction="none").reshape(prediction.shape[0], -1).mean(dim=1)
        if self.loss_type == LossType.L1:
            return F.l1_loss(prediction, target)
        return F.mse_loss(prediction, target)
