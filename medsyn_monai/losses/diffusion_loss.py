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

    Example:
        >>> import torch
        >>> DiffusionLoss("l1")(torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)).item()
        1.0
    """

    def __init__(self, loss_type: str | LossType = LossType.L2) -> None:
        super().__init__()
        if str(loss_type) not in [t.value for t in LossType]:
            raise ValueError(f"loss_type must be one of {[t.value for t in LossType]}, got {loss_type!r}.")
        self.loss_type = LossType(loss_type)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape.")
        prediction, target = prediction.float(), target.float()
        if self.loss_type == LossType.L1:
            return F.l1_loss(prediction, target)
        return F.mse_loss(prediction, target)
