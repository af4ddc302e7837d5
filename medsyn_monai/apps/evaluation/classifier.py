"""Train and test downstream classifiers on real and/or synthetic images, and build their training sets (shared by the
evaluation studies)."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from medsyn_monai.apps.generation.sampler import SampleGenerator
from medsyn_monai.data.datasets import ImageLabelDataset, TensorPairDataset, dataset_labels, dataset_length
from medsyn_monai.engines.evaluator import ClassificationEvaluator
from medsyn_monai.engines.prepare_batch import ExpertPrepareBatch
from medsyn_monai.losses.class_weights import class_weights

__all__ = [
    "evaluate_classifier",
    "fit_classifier",
    "generate_class_images",
    "scaled_class_counts",
    "stratified_indices",
]


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


def generate_class_images(
    generator: SampleGenerator, counts: Sequence[int], generator_labels: Sequence[int] | None = None, seed: int = 0
) -> TensorPairDataset:
    """Generate ``counts[c]`` images of every class ``c`` in one call, class by class, with one ``seed``.

    Args:
        generator: object with ``generate(labels=..., seed=...) -> (images, labels)`` (a loaded
            :class:`~medsyn_monai.apps.generation.DiffusionSampler`).
        counts: images per class, in the order of the classifier's classes.
        generator_labels: the generator's class index for each class (default ``0, 1, ...``).
        seed: the generation seed.

    Returns:
        the images (float32, CPU) with the *classifier's* class indices as labels, class 0 first.

    Raises:
        ValueError: a negative count, every count 0, or ``generator_labels`` of another length than ``counts``.

    Example:
        >>> import torch
        >>> class Painter:
        ...     def generate(self, num_samples=None, labels=None, seed=None):
        ...         return torch.tensor(labels, dtype=torch.float).view(-1, 1, 1, 1), torch.tensor(labels)
        >>> ds = generate_class_images(Painter(), [2, 1], generator_labels=[5, 7])
        >>> ds.labels.tolist(), ds.images.flatten().tolist()
        ([0, 0, 1], [5.0, 5.0, 7.0])
    """
    counts = [int(n) for n in counts]
    mapping = list(range(len(counts))) if generator_labels is None else [int(g) for g in generator_labels]
    if len(mapping) != len(counts):
        raise ValueError(f"generator_labels has {len(mapping)} entries for {len(counts)} classes.")
    if any(n < 0 for n in counts) or sum(counts) == 0:
        raise ValueError(f"the synthetic image counts per class must be >= 0 and not all 0, got {counts}.")
    labels = [c for c, n in enumerate(counts) for _ in range(n)]
    images, _ = generator.generate(labels=[mapping[c] for c in labels], seed=int(seed))
    return TensorPairDataset(images.float().cpu(), torch.as_tensor(labels, dtype=torch.long))


def scaled_class_counts(data: Dataset | Sequence, num_classes: int, ratio: float) -> list[int]:
    """The class counts of ``data`` times ``ratio``, rounded: how many synthetic images per class to add so that the
    synthetic images are ``ratio`` times the real ones, with the real class proportions.

    Example:
        >>> scaled_class_counts([{"label": 0}, {"label": 0}, {"label": 0}, {"label": 1}], 2, ratio=2)
        [6, 2]
    """
    counts = torch.bincount(dataset_labels(data), minlength=num_classes).tolist()
    return [int(round(c * ratio)) for c in counts]


def stratified_indices(
    labels: torch.Tensor | np.ndarray | Sequence[int], fraction: float, seed: int, num_classes: int | None = None
) -> list[int]:
    """Class-stratified random indices of ``fraction`` of the items: ``max(1, round(fraction * n_c))`` of the ``n_c``
    items of every present class, drawn without replacement with ``numpy.random.default_rng(seed)``; sorted.

    Args:
        labels: class index of every item.
        fraction: fraction to keep per class, in ``(0, 1]``.
        seed: seed of the draw.
        num_classes: classes to draw from, ``0 .. num_classes - 1`` (default: up to the largest label).

    Example:
        >>> idx = stratified_indices([0] * 30 + [1] * 10, 0.1, seed=0)
        >>> len(idx), sum(i >= 30 for i in idx)
        (4, 1)
    """
    arr = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for c in range(int(arr.max()) + 1 if num_classes is None and arr.size else int(num_classes or 0)):
        members = np.flatnonzero(arr == c)
        if len(members) == 0:
            continue
        n = max(1, int(round(fraction * len(members))))
        chosen += rng.choice(members, size=min(n, len(members)), replace=False).tolist()
    return sorted(chosen)
