"""Synthetic pre-training: a classifier pre-trained on synthetic images, fine-tuned on 100 / 10 / 0 % of real data."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from medsyn_monai.apps.evaluation.classifier import (
    evaluate_classifier,
    fit_classifier,
    generate_class_images,
    stratified_indices,
)
from medsyn_monai.apps.generation.sampler import SampleGenerator
from medsyn_monai.data.datasets import ImageLabelDataset, TensorPairDataset, dataset_labels, dataset_length
from medsyn_monai.utils.cli import as_bool
from medsyn_monai.utils.io import atomic_write, write_json

__all__ = ["SyntheticPretrainingStudy"]

_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc")


def _percent(fraction: float) -> str:
    return f"{100 * fraction:g}"


class SyntheticPretrainingStudy:
    """Pre-train a classifier on synthetic images, fine-tune it on a fraction of the real training data, test on real.

    The downstream score of the chest X-ray classifier-free guidance seed: do synthetic images carry enough of the
    classes to *pre-train* a classifier? For every classifier seed and every fraction ``f`` of ``real_fractions``:

    - ``synthetic_then_real_<p>`` (``p = 100 f`` percent): the classifier is trained on the synthetic images
      (``pretrain_epochs``), then fine-tuned on a class-stratified random ``f`` of the real training images
      (``finetune_epochs``, ``finetune_learning_rate``); ``f = 0`` is the classifier trained on synthetic images
      only (``synthetic_only``);
    - ``real_only_<p>`` (``f > 0``): the same classifier from the same initial weights trained on the same real
      subset alone (``real_epochs``), the baseline that pre-training must beat.

    Every run uses the same architecture (``classifier_factory``), Adam, (class-weighted) cross-entropy, batch size
    and training transform; with ``val_data`` each training stage keeps its epoch of best balanced accuracy on the
    real validation images (also for the synthetic pre-training, which thereby sees real validation *labels* for
    model selection only; ``val_data=None`` keeps the last epoch). All runs are tested on ``test_data``. The
    synthetic set is generated once (``generation_seed``) and shared by all classifier seeds; the real subset of a
    fraction depends on the classifier seed, so the spread over seeds includes the choice of the subset.

    :meth:`run` returns flat metrics ``<metric>_<row>_mean`` / ``_std`` (``accuracy``, ``balanced_accuracy``,
    ``f1_macro``, ``roc_auc``) and, with ``output_dir``, writes ``pretraining.json`` (every seed's numbers) and
    ``pretraining.md`` (the table).

    Args:
        classifier_factory: callable returning a fresh classifier ``(B, C, *spatial) -> (B, num_classes)`` logits,
            e.g. a config item with ``"_mode_": "callable"`` for :class:`~medsyn_monai.networks.nets.ExpertClassifier`.
        train_data: real training items ``{"image", "label"}``.
        test_data: real test items.
        class_names: the classifier's classes.
        generator: object with ``generate(labels=..., seed=...) -> (images, labels)`` (a loaded
            :class:`~medsyn_monai.apps.generation.DiffusionSampler`); or give ``synthetic_data``.
        synthetic_data: already generated ``{"image", "label"}`` items instead of ``generator``.
        samples_per_class: synthetic images per class to generate (an int, or one per class).
        num_samples: total synthetic images instead, split as evenly as possible over the classes (the first classes
            get one more when it does not divide).
        generator_labels: the generator's class index for each of ``class_names`` (default ``0, 1, ...``).
        real_fractions: fractions of the real training set for fine-tuning, each in ``[0, 1]``; ``0`` = synthetic only.
        classifier_seeds: seeds of the initial weights, the shuffling and the real subsets (one run per seed).
        val_data: real validation items for best-epoch selection, or ``None``.
        select_on_val: select the best epoch on ``val_data`` (``False``: keep the last epoch; command-line
            spellings of :func:`~medsyn_monai.utils.as_bool` are accepted, also for ``class_weighted``).
        train_transform: dict transform applied to every training item (real and synthetic).
        pretrain_epochs: epochs on the synthetic images.
        finetune_epochs: epochs of fine-tuning on the real subset.
        real_epochs: epochs of the real-only baselines (default ``pretrain_epochs``).
        batch_size: training and evaluation batch size.
        learning_rate: Adam learning rate of pre-training and of the real-only baselines.
        finetune_learning_rate: Adam learning rate of fine-tuning (default ``learning_rate``).
        class_weighted: inverse-frequency class weights in the cross-entropy.
        generation_seed: seed of the synthetic images.
        device: training device.
        output_dir: folder of the reports (``None``: nothing written).
        num_workers: data loader workers.

    Raises:
        ValueError: neither or both of ``generator`` / ``synthetic_data``; fractions outside ``[0, 1]``; no seeds;
            fewer than 2 classes; bad ``samples_per_class``, ``generator_labels`` or epoch counts.

    Example:
        >>> import torch
        >>> x = torch.cat([-torch.ones(6, 1, 2, 2), torch.ones(6, 1, 2, 2)])
        >>> y = torch.tensor([0] * 6 + [1] * 6)
        >>> real = [{"image": a, "label": b} for a, b in zip(x, y)]
        >>> factory = lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> ev = SyntheticPretrainingStudy(factory, real, real, ["a", "b"], synthetic_data=real,
        ...     real_fractions=[1.0, 0.0], classifier_seeds=[0], pretrain_epochs=20, finetune_epochs=1,
        ...     learning_rate=0.1)
        >>> m = ev.run()
        >>> m["accuracy_synthetic_only_mean"], m["accuracy_real_only_100_mean"]
        (1.0, 1.0)
    """

    def __init__(
        self,
        classifier_factory: Callable[[], nn.Module],
        train_data: Dataset | Sequence,
        test_data: Dataset | Sequence,
        class_names: Sequence[str],
        generator: SampleGenerator | None = None,
        synthetic_data: Dataset | Sequence | None = None,
        samples_per_class: int | Sequence[int] = 500,
        generator_labels: Sequence[int] | None = None,
        real_fractions: Sequence[float] = (1.0, 0.1, 0.0),
        classifier_seeds: Sequence[int] = (0, 1, 2),
        val_data: Dataset | Sequence | None = None,
        train_transform: Callable | None = None,
        pretrain_epochs: int = 10,
        finetune_epochs: int = 5,
        real_epochs: int | None = None,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        finetune_learning_rate: float | None = None,
        class_weighted: bool = True,
        generation_seed: int = 0,
        num_samples: int | None = None,
        select_on_val: bool = True,
        device: str | torch.device = "cpu",
        output_dir: str | Path | None = None,
        num_workers: int = 0,
    ) -> None:
        if (generator is None) == (synthetic_data is None):
            raise ValueError("give exactly one of generator (to generate the synthetic images) and synthetic_data.")
        self.class_names = [str(c) for c in class_names]
        if len(self.class_names) < 2:
            raise ValueError(f"class_names must name at least 2 classes, got {self.class_names}.")
        num_classes = len(self.class_names)
        if num_samples is not None:
            total = int(num_samples)
            samples_per_class = [
                total // num_classes + (1 if c < total % num_classes else 0) for c in range(num_classes)
            ]
        counts = (
            [int(samples_per_class)] * num_classes if isinstance(samples_per_class, int) else list(samples_per_class)
        )
        if len(counts) != num_classes or any(int(c) < 0 for c in counts) or sum(counts) == 0:
            raise ValueError(
                f"samples_per_class must be a non-negative int or one per class ({num_classes}), not all 0, got "
                f"{samples_per_class}."
            )
        self.samples_per_class = [int(c) for c in counts]
        if generator is not None and as_bool(class_weighted, "class_weighted") and 0 in self.samples_per_class:
            raise ValueError(
                f"samples_per_class {self.samples_per_class} leaves a class without synthetic images, which the "
                "class-weighted loss cannot weigh: generate at least one image per class (or class_weighted=False)."
            )
        self.generator_labels = list(range(num_classes)) if generator_labels is None else list(generator_labels)
        if len(self.generator_labels) != num_classes:
            raise ValueError(f"generator_labels has {len(self.generator_labels)} entries for {num_classes} classes.")
        fractions = [float(f) for f in real_fractions]
        if not fractions or any(not (0.0 <= f <= 1.0) or math.isnan(f) for f in fractions):
            raise ValueError(f"real_fractions must be a non-empty list of numbers in [0, 1], got {real_fractions}.")
        names = [self.row_name(f, f == 0) for f in fractions]
        if len(set(names)) != len(names):
            raise ValueError(f"real_fractions must be distinct (as row names {names}), got {list(real_fractions)}.")
        self.real_fractions = fractions
        self.classifier_seeds = [int(s) for s in classifier_seeds]
        if not self.classifier_seeds:
            raise ValueError("classifier_seeds must name at least one seed.")
        self.pretrain_epochs = int(pretrain_epochs)
        self.finetune_epochs = int(finetune_epochs)
        self.real_epochs = self.pretrain_epochs if real_epochs is None else int(real_epochs)
        if min(self.pretrain_epochs, self.finetune_epochs, self.real_epochs) < 1:
            raise ValueError(
                f"pretrain_epochs, finetune_epochs and real_epochs must be >= 1, got {pretrain_epochs}, "
                f"{finetune_epochs}, {real_epochs}."
            )
        self.classifier_factory = classifier_factory
        self.train_data, self.test_data = train_data, test_data
        self.val_data = val_data if as_bool(select_on_val, "select_on_val") else None
        self.generator, self.synthetic_data = generator, synthetic_data
        self.train_transform = train_transform
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.finetune_learning_rate = (
            self.learning_rate if finetune_learning_rate is None else float(finetune_learning_rate)
        )
        self.class_weighted = as_bool(class_weighted, "class_weighted")
        self.generation_seed = int(generation_seed)
        self.device = torch.device(device)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.num_workers = int(num_workers)
        self.logger = logging.getLogger(__name__)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @staticmethod
    def row_name(fraction: float, pretrained: bool) -> str:
        """Name of a result row: ``synthetic_only``, ``synthetic_then_real_<p>`` or ``real_only_<p>``."""
        if pretrained:
            return "synthetic_only" if fraction == 0 else f"synthetic_then_real_{_percent(fraction)}"
        return f"real_only_{_percent(fraction)}"

    def synthetic_set(self) -> ImageLabelDataset | TensorPairDataset:
        """The synthetic training items: ``synthetic_data``, or ``samples_per_class`` images generated per class."""
        if self.synthetic_data is not None:
            return ImageLabelDataset(self.synthetic_data)
        self.logger.info(
            f"generating {sum(self.samples_per_class)} synthetic images ({self.samples_per_class} per class)"
        )
        generator = self.generator
        assert generator is not None  # the constructor requires exactly one of generator and synthetic_data
        return generate_class_images(generator, self.samples_per_class, self.generator_labels, self.generation_seed)

    def real_subset(self, fraction: float, seed: int) -> list[int]:
        """Class-stratified random indices of ``fraction`` of the real training set (at least 1 per present class)."""
        return stratified_indices(dataset_labels(self.train_data), fraction, seed, self.num_classes)

    def _fit(self, network: nn.Module, dataset: Dataset, epochs: int, lr: float, seed: int) -> nn.Module:
        network, _ = fit_classifier(
            network,
            dataset,
            self.num_classes,
            epochs,
            batch_size=self.batch_size,
            learning_rate=lr,
            class_weighted=self.class_weighted,
            val_data=self.val_data,
            class_names=self.class_names,
            device=self.device,
            seed=seed,
            num_workers=self.num_workers,
        )
        return network

    def _test(self, network: nn.Module, loader: DataLoader, name: str, seed: int) -> dict[str, Any]:
        out = self.output_dir / "confusion" if self.output_dir is not None else None
        report = evaluate_classifier(network, loader, self.device, self.num_classes, self.class_names,
                                     output_dir=out, prefix=f"{name}_seed{seed}_")  # fmt: skip
        return {k: (None if report.get(k) is None else float(report[k])) for k in _METRICS}

    def run(self) -> dict[str, Any]:
        """Generate (once), train every row for every seed, test on the real test images; write the reports."""
        synthetic = self.synthetic_set()
        synthetic_train = ImageLabelDataset(synthetic, self.train_transform)
        test_loader = DataLoader(ImageLabelDataset(self.test_data), batch_size=self.batch_size, shuffle=False,
                                 num_workers=self.num_workers)  # fmt: skip
        per_seed: dict[str, list[dict[str, Any]]] = {}
        for seed in self.classifier_seeds:
            torch.manual_seed(seed)
            initial = self.classifier_factory()
            init_state = copy.deepcopy(initial.state_dict())
            self.logger.info(f"seed {seed}: pre-training on {len(synthetic_train)} synthetic images")
            pretrained = self._fit(initial, synthetic_train, self.pretrain_epochs, self.learning_rate, seed)
            pretrained_state = copy.deepcopy(pretrained.state_dict())
            for fraction in self.real_fractions:
                if fraction == 0:
                    network = pretrained
                    network.load_state_dict(pretrained_state)
                    per_seed.setdefault(self.row_name(0, True), []).append(
                        {"seed": seed, "num_real": 0, **self._test(network, test_loader, "synthetic_only", seed)}
                    )
                    continue
                subset = self.real_subset(fraction, seed)
                real = ImageLabelDataset(Subset(self.train_data, subset), self.train_transform)  # type: ignore[arg-type]  # Subset just indexes: a Sequence works
                for is_pretrained in (True, False):
                    name = self.row_name(fraction, is_pretrained)
                    network = self.classifier_factory()
                    network.load_state_dict(pretrained_state if is_pretrained else init_state)
                    epochs = self.finetune_epochs if is_pretrained else self.real_epochs
                    lr = self.finetune_learning_rate if is_pretrained else self.learning_rate
                    self.logger.info(f"seed {seed}: {name} on {len(real)} real images ({epochs} epochs)")
                    network = self._fit(network, real, epochs, lr, seed)
                    per_seed.setdefault(name, []).append(
                        {"seed": seed, "num_real": len(real), **self._test(network, test_loader, name, seed)}
                    )
        metrics: dict[str, Any] = {}
        for name, runs in per_seed.items():
            for key in _METRICS:
                values = [r[key] for r in runs if r[key] is not None]
                metrics[f"{key}_{name}_mean"] = float(np.mean(values)) if values else None
                metrics[f"{key}_{name}_std"] = float(np.std(values)) if values else None
        if self.output_dir is not None:
            self._write(per_seed, metrics, len(synthetic))
        return metrics

    def _write(self, per_seed: dict[str, list[dict[str, Any]]], metrics: dict[str, Any], num_synthetic: int) -> None:
        output_dir = self.output_dir
        assert output_dir is not None  # run() writes the reports only when output_dir is given
        settings = {
            "class_names": self.class_names,
            "num_synthetic": num_synthetic,
            "samples_per_class": self.samples_per_class if self.synthetic_data is None else None,
            "num_real_train": dataset_length(self.train_data, "train_data"),
            "num_real_test": dataset_length(self.test_data, "test_data"),
            "real_fractions": self.real_fractions,
            "classifier_seeds": self.classifier_seeds,
            "pretrain_epochs": self.pretrain_epochs,
            "finetune_epochs": self.finetune_epochs,
            "real_epochs": self.real_epochs,
            "learning_rate": self.learning_rate,
            "finetune_learning_rate": self.finetune_learning_rate,
            "model_selection": "best real validation balanced accuracy" if self.val_data is not None else "last epoch",
        }
        write_json(output_dir / "pretraining.json", {"settings": settings, "runs": per_seed, "metrics": metrics})
        n = len(self.classifier_seeds)
        lines = [
            f"# Synthetic pre-training ({num_synthetic} synthetic images; {n} classifier seed(s), mean ± std)",
            "",
            "| training | real images | accuracy | balanced accuracy | F1 (macro) | ROC AUC |",
            "|---|---:|---:|---:|---:|---:|",
        ]

        def cell(name: str, key: str) -> str:
            mean, std = metrics.get(f"{key}_{name}_mean"), metrics.get(f"{key}_{name}_std")
            return "n/a" if mean is None else f"{mean:.3f} ± {std:.3f}"

        for name, runs in per_seed.items():
            label = name.replace("_", " ")
            lines.append(
                f"| {label} | {runs[0]['num_real']} | " + " | ".join(cell(name, key) for key in _METRICS) + " |"
            )
        text = "\n".join(lines) + "\n"
        atomic_write(output_dir / "pretraining.md", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
