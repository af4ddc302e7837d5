"""Training a downstream classifier on real and/or synthetic images (shared by the synthetic-data evaluators)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from medsyn_monai.engines.expert import ExpertPrepareBatch, class_weights, evaluate_classifier

__all__ = ["ImageLabelDataset", "TensorPairDataset", "dataset_labels", "fit_classifier"]


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
    return torch.as_tensor([int(torch.as_tensor(data[i]["label"])) for i in range(len(data))])  # type: ignore[arg-type]


def fit_classifier(
    network: nn.Module,
    dataset: Dataset,
    num_classes: int,
    max_epochs: int,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    class_weighted: bool = True,
    val_data: Dataset | Sequence | None = None,
    class_names: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    num_workers: int = 0,
) -> tuple[nn.Module, Mapping[str, Any]]:
    """Train ``network`` on ``dataset`` with Adam and cross-entropy (MONAI ``SupervisedTrainer``).

    With ``val_data`` the weights of the epoch with the best balanced accuracy on it are restored at the end; else
    the last epoch's weights are kept.

    Args:
        network: classifier ``(B, C, *spatial) -> (B, num_classes)``, already initialised (fresh, or pre-trained
            for fine-tuning); trained in place.
        dataset: ``{"image", "label"}`` training items.
        num_classes: number of classes.
        max_epochs: training epochs (>= 1).
        batch_size: batch size of training and validation.
        learning_rate: Adam learning rate.
        class_weighted: inverse-frequency class weights (of ``dataset``'s labels) in the cross-entropy.
        val_data: items for best-epoch selection, or ``None``.
        class_names: class names of the reports.
        device: training device.
        seed: seed of the shuffling.
        num_workers: data loader workers.

    Returns:
        the trained network (best or last weights) and ``{"best_epoch", "best_val_balanced_accuracy"}``.

    Raises:
        ValueError: ``max_epochs`` or ``batch_size`` below 1, or an empty ``dataset``.

    Example:
        >>> import torch
        >>> x = torch.cat([-torch.ones(8, 1, 2, 2), torch.ones(8, 1, 2, 2)])
        >>> y = torch.cat([torch.zeros(8), torch.ones(8)]).long()
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> net, info = fit_classifier(net, TensorPairDataset(x, y), 2, max_epochs=20, learning_rate=0.1,
        ...                            val_data=TensorPairDataset(x, y))
        >>> info["best_val_balanced_accuracy"]
        1.0
    """
    if max_epochs < 1 or batch_size < 1:
        raise ValueError(f"max_epochs and batch_size must be >= 1, got {max_epochs}, {batch_size}.")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("the classifier's training set is empty.")
    device = torch.device(device)
    network = network.to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    weight = class_weights(dataset_labels(dataset), num_classes).to(device) if class_weighted else None
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=int(max_epochs),
        train_data_loader=loader,
        network=network,
        optimizer=torch.optim.Adam(network.parameters(), lr=learning_rate),
        loss_function=nn.CrossEntropyLoss(weight=weight),
        prepare_batch=ExpertPrepareBatch(),
        decollate=False,
    )
    best: dict[str, Any] = {"score": None, "state": None, "epoch": int(max_epochs)}
    if val_data is not None:
        val_loader = DataLoader(ImageLabelDataset(val_data), batch_size=batch_size, shuffle=False,
                                num_workers=num_workers)  # fmt: skip

        @trainer.on(Events.EPOCH_COMPLETED)
        def _select(engine: SupervisedTrainer) -> None:
            report = evaluate_classifier(network, val_loader, device, num_classes, class_names)
            score = float(report["balanced_accuracy"])
            if not math.isfinite(score):  # undefined (e.g. an empty validation class): never the best epoch
                return
            if best["score"] is None or score > best["score"]:
                best.update(score=score, state=copy.deepcopy(network.state_dict()), epoch=engine.state.epoch)

    trainer.run()
    if best["state"] is not None:
        network.load_state_dict(best["state"])
    return network, {"best_epoch": best["epoch"], "best_val_balanced_accuracy": best["score"]}
