"""Inverse-frequency class weights, and the class-weighted cross-entropy of the expert classifiers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from medsyn_monai.utils.cli import as_bool

__all__ = ["ClassWeightedCrossEntropyLoss", "class_weights"]


def class_weights(labels: Sequence[int] | np.ndarray | torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights normalised to mean 1, for a class-weighted cross-entropy.

    ``w_c = (1 / n_c) / mean_k(1 / n_k)`` where ``n_c`` is the number of training samples of class ``c``.

    Args:
        labels: class indices of the training samples.
        num_classes: number of classes.

    Returns:
        ``(num_classes,)`` float32 weights, e.g. ``torch.nn.CrossEntropyLoss(weight=class_weights(...))``.

    Raises:
        ValueError: no labels, an index outside ``[0, num_classes)``, or a class without samples (its weight would
            be infinite).

    Example:
        >>> class_weights([0, 0, 0, 1], num_classes=2).tolist()
        [0.5, 1.5]
    """
    t = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    if t.numel() == 0:
        raise ValueError("class_weights needs at least one label.")
    if t.is_floating_point() and not torch.equal(t, t.round()):
        raise ValueError("labels must be integer class indices.")
    t = t.long()
    if int(t.min()) < 0 or int(t.max()) >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes}), got min {int(t.min())}, max {int(t.max())}.")
    counts = torch.bincount(t, minlength=num_classes).double()
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).reshape(-1).tolist()
        raise ValueError(f"classes {missing} have no samples: their inverse-frequency weight is undefined.")
    inv = 1.0 / counts
    return (inv / inv.mean()).float()


class ClassWeightedCrossEntropyLoss(nn.CrossEntropyLoss):
    """:class:`torch.nn.CrossEntropyLoss` with the inverse-frequency :func:`class_weights` of the training labels.

    Class imbalance (e.g. PneumoniaMNIST: 26 % normal, 74 % pneumonia) biases an unweighted classifier towards the
    frequent class; weighting each class by the inverse of its frequency (normalised to mean 1) restores the balance.
    With ``class_weighted=False`` this is the plain cross-entropy (a bundle's ``--class_weighted false``).

    Args:
        labels: class indices of the training samples (e.g. ``SliceDataset.labels``).
        num_classes: number of classes.
        class_weighted: use the weights; the command-line spellings of :func:`~medsyn_monai.utils.as_bool` are
            accepted.
        kwargs: other :class:`torch.nn.CrossEntropyLoss` arguments.

    Example:
        >>> loss = ClassWeightedCrossEntropyLoss([0, 0, 0, 1], num_classes=2)
        >>> loss.weight.tolist(), ClassWeightedCrossEntropyLoss([0, 1], 2, class_weighted="false").weight
        ([0.5, 1.5], None)
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | torch.Tensor,
        num_classes: int,
        class_weighted: bool = True,
        **kwargs: Any,
    ) -> None:
        weight = class_weights(labels, num_classes) if as_bool(class_weighted, "class_weighted") else None
        super().__init__(weight=weight, **kwargs)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.weight is not None and self.weight.device != input.device:
            self.to(input.device)  # the weights follow the logits (e.g. to the GPU)
        return super().forward(input, target)
