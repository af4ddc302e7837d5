"""Small datasets of ``{"image", "label"}`` items (real images of a collection, or generated tensors)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["ImageLabelDataset", "TensorPairDataset", "dataset_labels"]


class ImageLabelDataset(Dataset):
    """``{"image", "label"}`` items of a dataset of dictionaries (other keys dropped), optionally transformed.

    Args:
        data: items with ``"image"`` and ``"label"`` (e.g. a :class:`~medsyn_monai.data.SliceDataset`).
        transform: dict transform applied to every item (e.g. random flips for training).

    Example:
        >>> import torch
        >>> ds = ImageLabelDataset([{"image": torch.zeros(1, 2, 2), "label": 1, "path": "a.png"}])
        >>> sorted(ds[0]), ds.labels.tolist()
        (['image', 'label'], [1])
    """

    def __init__(self, data: Dataset | Sequence, transform: Callable | None = None) -> None:
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    @property
    def labels(self) -> torch.Tensor:
        return dataset_labels(self.data)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.data[index]
        out = {"image": torch.as_tensor(item["image"]).float(), "label": torch.as_tensor(item["label"]).long()}
        return dict(self.transform(out)) if self.transform is not None else out


class TensorPairDataset(Dataset):
    """Images ``(N, C, *spatial)`` and labels ``(N,)`` as ``{"image", "label"}`` items (e.g. generated images)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels.")
        self.images, self.labels = images, labels.reshape(-1).long()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "label": self.labels[index]}


def dataset_labels(data: Dataset | Sequence) -> torch.Tensor:
    """The labels of a dataset: its ``labels`` tensor when it has one, else read item by item (``ConcatDataset``
    of such datasets included)."""
    labels = getattr(data, "labels", None)
    if isinstance(labels, torch.Tensor):
        return labels.reshape(-1).long()
    parts = getattr(data, "datasets", None)
    if parts is not None:
        return torch.cat([dataset_labels(d) for d in parts])
    return torch.as_tensor([int(torch.as_tensor(data[i]["label"])) for i in range(len(data))], dtype=torch.long)  # type: ignore[arg-type]
