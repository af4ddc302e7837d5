"""Does synthetic data help a classifier? Train it on real data and on real + synthetic data, test both on real."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from medsyn_monai.apps.evaluation.classifier import (
    evaluate_classifier,
    fit_classifier,
    generate_class_images,
    scaled_class_counts,
)
from medsyn_monai.apps.generation.sampler import SampleGenerator
from medsyn_monai.data.datasets import ImageLabelDataset, TensorPairDataset, dataset_length
from medsyn_monai.utils.cli import as_bool
from medsyn_monai.utils.io import write_json

__all__ = ["SyntheticAugmentationStudy"]


class SyntheticAugmentationStudy:
    """Train one classifier on real images and one on real + synthetic images; report both accuracies on real tests.

    The usual downstream test of a generative model for medical images: if its samples carry the class information,
    adding them to the real training data should not hurt (and may help) a classifier evaluated on held-out *real*
    images. Both classifiers come from the same ``classifier_factory`` with the same initial weights (``seed``), the
    same optimiser (Adam), class-weighted cross-entropy, epochs, batch size, shuffling seed and training transform;
    only the training set differs:

    - ``real_only``: the real training images;
    - ``real_plus_synthetic``: the real training images plus synthetic images drawn from ``generator`` so that a
      fraction ``synthetic_fraction`` of the training set is synthetic (0.5: as many synthetic as real images, "50/50"),
      with the real training set's class proportions.

    With ``val_data`` each run keeps the weights of its best epoch by balanced accuracy on the real validation images;
    otherwise the last epoch's. Each is then tested on ``test_data`` with
    :func:`~medsyn_monai.apps.evaluation.evaluate_classifier` (``<name>_metrics.json`` and
    ``<name>_confusion_matrix.png`` in ``output_dir``), and ``augmentation.json`` summarises both runs (accuracy,
    balanced accuracy, macro F1, their differences, counts, settings).

    Args:
        classifier_factory: callable returning a fresh classifier ``(B, C, *spatial) -> (B, num_classes)`` logits,
            e.g. a config item ``{"_target_": "medsyn_monai.networks.nets.ExpertClassifier", "_mode_": "callable",
            ...}``.
        train_data: real training items ``{"image", "label"}`` (e.g. a :class:`~medsyn_monai.data.SliceDataset`,
            whose ``labels`` are used for the class counts).
        test_data: real test items.
        generator: a :class:`~medsyn_monai.apps.generation.SampleGenerator` (e.g. a
            :class:`~medsyn_monai.apps.generation.DiffusionSampler` with loaded weights), images in [-1, 1] of the
            shape of the real images.
        class_names: the classifier's classes (label ``i`` of the real data is ``class_names[i]``).
        generator_labels: the generator's class index for each of ``class_names`` (default ``0, 1, ...``); e.g. a
            fine-tuned model with an extra class keeps the base classes first.
        synthetic_fraction: fraction of synthetic images in the augmented training set, in ``(0, 1)``.
        val_data: optional real validation items for best-epoch selection.
        train_transform: dict transform applied to every training item (real and synthetic), e.g. random flips.
        max_epochs: epochs of each training run.
        batch_size: training and evaluation batch size.
        learning_rate: Adam learning rate.
        class_weighted: inverse-frequency class weights in the cross-entropy.
        device: training device.
        seed: seed of the initial weights, the shuffling and the synthetic images.
        output_dir: folder of the reports (``None``: nothing written).
        num_workers: data loader workers.

    Raises:
        ValueError: bad ``synthetic_fraction``, ``max_epochs``, ``batch_size``, ``class_names`` or
            ``generator_labels``.
    """

    def __init__(
        self,
        classifier_factory: Callable[[], nn.Module],
        train_data: Dataset | Sequence,
        test_data: Dataset | Sequence,
        generator: SampleGenerator,
        class_names: Sequence[str],
        generator_labels: Sequence[int] | None = None,
        synthetic_fraction: float = 0.5,
        val_data: Dataset | Sequence | None = None,
        train_transform: Callable | None = None,
        max_epochs: int = 10,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        class_weighted: bool = True,
        device: str | torch.device = "cpu",
        seed: int = 0,
        output_dir: str | Path | None = None,
        num_workers: int = 0,
    ) -> None:
        if not 0.0 < synthetic_fraction < 1.0:
            raise ValueError(f"synthetic_fraction must be in (0, 1), got {synthetic_fraction}.")
        if max_epochs < 1 or batch_size < 1:
            raise ValueError(f"max_epochs and batch_size must be >= 1, got {max_epochs}, {batch_size}.")
        self.class_names = [str(c) for c in class_names]
        if len(self.class_names) < 2:
            raise ValueError(f"class_names must name at least 2 classes, got {self.class_names}.")
        self.generator_labels = (
            list(range(len(self.class_names))) if generator_labels is None else list(generator_labels)
        )
        if len(self.generator_labels) != len(self.class_names):
            raise ValueError(
                f"generator_labels has {len(self.generator_labels)} entries for {len(self.class_names)} classes."
            )
        self.classifier_factory = classifier_factory
        self.train_data = train_data
        self.test_data = test_data
        self.val_data = val_data
        self.generator = generator
        self.synthetic_fraction = float(synthetic_fraction)
        self.train_transform = train_transform
        self.max_epochs = int(max_epochs)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.class_weighted = as_bool(class_weighted, "class_weighted")
        self.device = torch.device(device)
        self.seed = int(seed)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.num_workers = int(num_workers)
        self.logger = logging.getLogger(__name__)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def synthetic_counts(self) -> list[int]:
        """Synthetic images per class: the real class counts scaled by ``f / (1 - f)``."""
        ratio = self.synthetic_fraction / (1.0 - self.synthetic_fraction)
        return scaled_class_counts(self.train_data, self.num_classes, ratio)

    def synthetic_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Generate the synthetic training images; returns ``(images, labels)`` with labels in ``class_names``."""
        counts = self.synthetic_counts()
        if sum(counts) == 0:
            raise ValueError("the real training set is empty: no synthetic images to match.")
        synthetic = generate_class_images(self.generator, counts, self.generator_labels, self.seed)
        return synthetic.images, synthetic.labels

    def train_classifier(self, dataset: Dataset) -> nn.Module:
        """Train a fresh classifier on ``dataset``; return it with its best (or last) weights."""
        torch.manual_seed(self.seed)
        network, info = fit_classifier(
            self.classifier_factory(),
            dataset,
            self.num_classes,
            self.max_epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            class_weighted=self.class_weighted,
            val_data=self.val_data,
            class_names=self.class_names,
            device=self.device,
            seed=self.seed,
            num_workers=self.num_workers,
        )
        network.best_epoch = info["best_epoch"]
        return network

    def _loader(self, data: Dataset | Sequence) -> DataLoader:
        return DataLoader(
            ImageLabelDataset(data), batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers
        )

    def run(self) -> dict[str, Any]:
        """Generate, train both classifiers, test them on the real test images and write the reports."""
        images, labels = self.synthetic_set()
        real = ImageLabelDataset(self.train_data, self.train_transform)
        synthetic = ImageLabelDataset(TensorPairDataset(images, labels), self.train_transform)
        runs: Mapping[str, ConcatDataset] = {
            "real_only": ConcatDataset([real]),
            "real_plus_synthetic": ConcatDataset([real, synthetic]),
        }
        test_loader = self._loader(self.test_data)
        result: dict[str, Any] = {
            "class_names": self.class_names,
            "num_real_train": len(real),
            "num_synthetic_train": len(synthetic),
            "synthetic_per_class": dict(zip(self.class_names, self.synthetic_counts(), strict=True)),
            "synthetic_fraction": self.synthetic_fraction,
            "num_real_test": dataset_length(self.test_data, "test_data"),
            "max_epochs": self.max_epochs,
            "model_selection": "best real validation balanced accuracy" if self.val_data is not None else "last epoch",
        }
        for name, dataset in runs.items():
            self.logger.info(f"training the {name} classifier on {len(dataset)} images")
            network = self.train_classifier(dataset)
            report = evaluate_classifier(network, test_loader, self.device, self.num_classes, self.class_names,
                                         output_dir=self.output_dir, prefix=f"{name}_")  # fmt: skip
            for key in ("accuracy", "balanced_accuracy", "f1_macro"):
                result[f"{key}_{name}"] = report[key]
            best_epoch: Any = network.best_epoch  # an int set by train_classifier (Module types it Tensor | Module)
            result[f"best_epoch_{name}"] = int(best_epoch)
            self.logger.info(f"{name}: test accuracy {report['accuracy']:.3f}")
        for key in ("accuracy", "balanced_accuracy", "f1_macro"):
            result[f"{key}_gain"] = result[f"{key}_real_plus_synthetic"] - result[f"{key}_real_only"]
        if self.output_dir is not None:
            write_json(self.output_dir / "augmentation.json", result)
        return result
