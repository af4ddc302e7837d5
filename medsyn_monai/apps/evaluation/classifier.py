"""Train and test downstream classifiers on real and/or synthetic images (shared by the evaluation studies)."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from medsyn_monai.data.datasets import ImageLabelDataset, dataset_labels, dataset_length
from medsyn_monai.engines.evaluator import ClassificationEvaluator
from medsyn_monai.engines.prepare_batch import ExpertPrepareBatch
from medsyn_monai.losses.class_weights import class_weights

__all__ = ["evaluate_classifier", "fit_classifier"]


def evaluate_classifier(
    network: torch.nn.Module,
    data_loader: Iterable,
    device: str | torch.device,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    output_dir: str | Path | None = None,
    prefix: str = "",
    **kwargs: Any,
) -> dict[str, Any]:
    """Run a classifier over a loader once and return its classification report.

    The network runs in eval mode without gradients (its training mode is restored afterwards).

    Args:
        network: classifier returning ``(B, num_classes)`` logits.
        data_loader: loader of ``{"image", "label"}`` batches.
        device: device to evaluate on.
        num_classes: number of classes.
        class_names: class names (default ``"0"``, ``"1"``, ...).
        output_dir: when given, ``<prefix>metrics.json`` and ``<prefix>confusion_matrix.png`` are written there.
        prefix: prefix of the file names.
        kwargs: other :class:`ClassificationEvaluator` arguments (``prepare_batch``, ``inferer``, ``amp``, ...).

    Returns:
        :func:`~medsyn_monai.metrics.classification.classification_report` of the whole loader.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1, 2))
        >>> data = [{"image": torch.zeros(3, 1, 1, 1), "label": torch.tensor([0, 1, 1])}]
        >>> report = evaluate_classifier(net, data, "cpu", num_classes=2)
        >>> report["support"], sum(map(sum, report["confusion_matrix"]))
        ({'0': 1, '1': 2}, 3)
    """
    evaluator = ClassificationEvaluator(
        device,
        data_loader,
        network,
        num_classes,
        class_names=class_names,
        output_dir=output_dir,
        prefix=prefix,
        **kwargs,
    )
    evaluator.run()
    assert evaluator.report is not None
    return evaluator.report


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
        >>> from medsyn_monai.data import TensorPairDataset
        >>> net, info = fit_classifier(net, TensorPairDataset(x, y), 2, max_epochs=20, learning_rate=0.1,
        ...                            val_data=TensorPairDataset(x, y))
        >>> info["best_val_balanced_accuracy"]
        1.0
    """
    if max_epochs < 1 or batch_size < 1:
        raise ValueError(f"max_epochs and batch_size must be >= 1, got {max_epochs}, {batch_size}.")
    if dataset_length(dataset, "dataset") == 0:
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
