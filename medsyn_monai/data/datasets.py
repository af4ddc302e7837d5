"""Small datasets of ``{"image", "label"}`` items (real images of a collection, or generated tensors)."""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["ImageLabelDataset", "TensorPairDataset", "dataset_labels", "dataset_length"]


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
        return dataset_length(self.data, "data")

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
    return torch.as_tensor(
        [int(torch.as_tensor(data[i]["label"])) for i in range(dataset_length(data, "data"))], dtype=torch.long
    )


def dataset_length(data: Dataset | Sequence, name: str = "dataset") -> int:
    """The number of items of a map-style dataset or sequence.

    ``torch.utils.data.Dataset`` does not declare ``__len__`` (an ``IterableDataset`` has no length), so code that
    needs a length asks here and gets a clear error naming the argument instead of ``object has no len()``.

    Args:
        data: a dataset or sequence with ``__len__``.
        name: the name of the argument, used in the error message.

    Raises:
        TypeError: when ``data`` has no ``__len__`` (e.g. an ``IterableDataset``).

    Example:
        >>> dataset_length([{"label": 0}, {"label": 1}], "train_data")
        2
    """
    if not isinstance(data, Sized):
        raise TypeError(f"{name} must have a length (a map-style Dataset or a Sequence), got {type(data).__name__}.")
    return len(data)
