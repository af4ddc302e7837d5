"""Generation accuracy: does an expert classifier recognise the class a conditional model was asked for?"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsyn_monai.apps.generation.sampler import SampleGenerator
from medsyn_monai.metrics.classification import classification_report, confusion_matrix
from medsyn_monai.utils.io import write_json
from medsyn_monai.visualize import save_confusion_matrix_png

__all__ = ["GenerationAccuracyStudy"]


class GenerationAccuracyStudy:
    """Sample ``samples_per_class`` images of each class for each of ``num_seeds`` seeds and classify them.

    This is the score of the feature-aligned diffusion seed method: the accuracy of a frozen expert classifier on
    generated images, as mean ± standard deviation over sampling seeds, per class, and as a confusion matrix (rows:
    the class asked for, columns: the expert's prediction) written next to the expert's confusion matrix on real
    images. Seed ``k`` uses noise seed ``base_seed + k`` and the same class order, so two models evaluated with the
    same settings see identical noise. An oracle expert scores 1, a constant expert ``1 / C``.

    Args:
        generator: an object with ``generate(labels=..., seed=...) -> (images, labels)``, e.g.
            :class:`~medsyn_monai.apps.generation.DiffusionSampler` with its weights loaded.
        expert: classifier returning logits ``(B, C)`` for images in [-1, 1].
        class_names: names of the generator's classes (the expert must use the same class indices).
        num_seeds: number of sampling seeds (15 in the seed paper).
        samples_per_class: images per class and seed (10 in the seed paper).
        exclude_classes: class names (or indices) not evaluated, e.g. an "empty" class.
        base_seed: seed of the first sampling run.
        output_dir: where ``generation_accuracy.json`` and the confusion-matrix PNGs go (``None``: not written).
        real_data_loader: optional loader of real ``{"image", "label"}`` batches for the expert's confusion matrix
            on real images.
        device: device of the expert.
        batch_size: images classified per forward pass.
    """

    def __init__(
        self,
        generator: SampleGenerator,
        expert: torch.nn.Module,
        class_names: Sequence[str],
        num_seeds: int = 15,
        samples_per_class: int = 10,
        exclude_classes: Sequence[str | int] = (),
        base_seed: int = 0,
        output_dir: str | Path | None = None,
        real_data_loader: Iterable | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
    ) -> None:
        if num_seeds < 1 or samples_per_class < 1:
            raise ValueError(f"num_seeds and samples_per_class must be >= 1, got {num_seeds}, {samples_per_class}.")
        self.class_names = list(class_names)
        excluded = set()
        for c in exclude_classes:
            idx = self.class_names.index(c) if isinstance(c, str) and c in self.class_names else c
            if not isinstance(idx, int) or not 0 <= idx < len(self.class_names):
                raise ValueError(f"exclude_classes: unknown class {c!r} (classes: {self.class_names}).")
            excluded.add(idx)
        self.classes = [i for i in range(len(self.class_names)) if i not in excluded]
        if not self.classes:
            raise ValueError("every class is excluded: nothing to evaluate.")
        self.generator = generator
        self.expert = expert
        self.num_seeds = num_seeds
        self.samples_per_class = samples_per_class
        self.base_seed = base_seed
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.real_data_loader = real_data_loader
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.logger = logging.getLogger(__name__)

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Expert predictions (class indices) for ``images``."""
        self.expert.to(self.device).eval()
        preds = [
            self.expert(images[i : i + self.batch_size].to(self.device)).argmax(dim=1).cpu()
            for i in range(0, images.shape[0], self.batch_size)
        ]
        return torch.cat(preds)

    def run(self) -> dict[str, Any]:
        """Sample, classify and summarise; write the JSON and PNGs when ``output_dir`` is set."""
        num_classes = len(self.class_names)
        labels = [c for c in self.classes for _ in range(self.samples_per_class)]
        per_seed: list[float] = []
        per_class: dict[str, list[float]] = {self.class_names[c]: [] for c in self.classes}
        total = np.zeros((num_classes, num_classes), dtype=np.int64)
        for k in range(self.num_seeds):
            images, _ = self.generator.generate(labels=labels, seed=self.base_seed + k)
            preds = self.classify(images)
            target = torch.as_tensor(labels)
            per_seed.append(float((preds == target).float().mean()))
            for c in self.classes:
                mask = target == c
                per_class[self.class_names[c]].append(float((preds[mask] == c).float().mean()))
            total += np.asarray(confusion_matrix(target.numpy(), preds.numpy(), num_classes))
            self.logger.info(f"seed {self.base_seed + k}: generation accuracy {per_seed[-1]:.3f}")
        result: dict[str, Any] = {
            "generation_accuracy_mean": float(np.mean(per_seed)),
            "generation_accuracy_std": float(np.std(per_seed)),
            "generation_accuracy_per_seed": per_seed,
            "generation_accuracy_per_class": {name: float(np.mean(v)) for name, v in per_class.items()},
            **{f"generation_accuracy_{name}": float(np.mean(v)) for name, v in per_class.items()},
            "generation_confusion_matrix": total.tolist(),
            "num_seeds": self.num_seeds,
            "samples_per_class": self.samples_per_class,
            "classes_evaluated": [self.class_names[c] for c in self.classes],
        }
        if self.real_data_loader is not None:
            y_true, y_pred = [], []
            for batch in self.real_data_loader:
                y_true.append(torch.as_tensor(batch["label"]).reshape(-1))
                y_pred.append(self.classify(torch.as_tensor(batch["image"])))
            real = classification_report(torch.cat(y_true), torch.cat(y_pred), num_classes=num_classes)
            result["expert_accuracy_real"] = real["accuracy"]
            result["expert_confusion_matrix_real"] = real["confusion_matrix"]
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.output_dir / "generation_accuracy.json", result)
            out = self.output_dir
            title = f"expert on generated images ({self.num_seeds} seeds)"
            save_confusion_matrix_png(total, self.class_names, out / "generation_confusion_synthetic.png", title=title)
            if "expert_confusion_matrix_real" in result:
                real_cm = result["expert_confusion_matrix_real"]
                save_confusion_matrix_png(
                    real_cm, self.class_names, out / "generation_confusion_real.png", title="expert on real images"
                )
        self.logger.info(
            f"generation accuracy {result['generation_accuracy_mean']:.3f} ± {result['generation_accuracy_std']:.3f} "
            f"over {self.num_seeds} seeds"
        )
        return result
