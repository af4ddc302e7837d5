"""Keep only the synthetic images that a classifier recognises as their intended class with enough confidence."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medsyn_monai.networks.nets import ExpertClassifier

from .sampler import SampleGenerator

__all__ = ["ConfidenceFilteredGenerator"]


class ConfidenceFilteredGenerator:
    """A class-conditional generator whose images pass a classifier's confidence test for their intended class.

    Generated images of class ``c`` are kept when ``classifier`` gives class ``c`` a softmax probability of at least
    ``min_confidence``; rejected ones are replaced by further images (new seeds) until every requested image has a
    kept one, or ``max_rounds`` generation rounds are spent (then :class:`RuntimeError` says which class fell short).
    Filtering synthetic training data by a classifier's confidence is a common curation step for synthetic
    classifier training sets (e.g. He et al. 2023, *Is synthetic data from generative models ready for image
    recognition?*, ICLR); the classifier is normally the bundle's expert (``train_expert.json``), trained on the same
    real training split as the diffusion model, never on the test split.

    The images come back in the order of the requested ``labels``, with the same ``(images, labels)`` interface as
    :class:`~medsyn_monai.apps.generation.DiffusionSampler`, so it drops into every study that takes a generator.
    The same ``labels`` and ``seed`` give the same images. :attr:`report` holds, per class, the images generated
    and kept and the acceptance rate of the last call.

    Args:
        generator: the class-conditional generator (``generate(labels=..., seed=...)``).
        classifier: ``(B, C, H, W)`` images in ``[-1, 1]`` → ``(B, num_classes)`` logits, in eval mode.
        min_confidence: the probability in ``[0, 1)`` the intended class must reach (``0.5`` of 2 classes: the
            classifier's decision).
        classifier_labels: the classifier's class index for each generator label (a mapping as a list indexed by
            the generator's label; default: the same indices).
        oversample: images generated per missing image in each round (>= 1).
        max_rounds: generation rounds before giving up (>= 1).
        batch_size: classifier batch size.
        device: the classifier's device.

    Raises:
        ValueError: ``min_confidence`` outside ``[0, 1)``, ``oversample`` < 1 or ``max_rounds`` < 1.

    Example:
        >>> import torch
        >>> class Painter:  # images of value +1 (class 1) or -1 (class 0), every second one faint
        ...     def generate(self, num_samples=None, labels=None, seed=None):
        ...         sign = torch.tensor([1.0 if c else -1.0 for c in labels]).view(-1, 1, 1, 1)
        ...         faint = torch.tensor([0.1 if (i + seed) % 2 else 1.0 for i in range(len(labels))])
        ...         return sign * faint.view(-1, 1, 1, 1), torch.tensor(labels)
        >>> judge = lambda x: torch.cat([-5 * x.flatten(1), 5 * x.flatten(1)], dim=1)  # logits
        >>> gen = ConfidenceFilteredGenerator(Painter(), judge, min_confidence=0.9)
        >>> images, labels = gen.generate(labels=[0, 1, 1], seed=0)
        >>> images.flatten().tolist(), labels.tolist()
        ([-1.0, 1.0, 1.0], [0, 1, 1])
        >>> gen.report["1"]["kept"], gen.report["1"]["generated"]
        (2, 4)
    """

    def __init__(
        self,
        generator: SampleGenerator,
        classifier: nn.Module | Any,
        min_confidence: float,
        classifier_labels: Sequence[int] | None = None,
        oversample: float = 1.5,
        max_rounds: int = 10,
        batch_size: int = 256,
        device: str | torch.device = "cpu",
    ) -> None:
        self.min_confidence = float(min_confidence)
        if not 0.0 <= self.min_confidence < 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1), got {min_confidence}.")
        self.oversample = float(oversample)
        self.max_rounds = int(max_rounds)
        if not self.oversample >= 1.0 or self.max_rounds < 1:
            raise ValueError(f"oversample must be >= 1 and max_rounds >= 1, got {oversample} and {max_rounds}.")
        self.generator = generator
        self.classifier = classifier
        self.classifier_labels = None if classifier_labels is None else [int(c) for c in classifier_labels]
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.report: dict[str, dict[str, Any]] = {}
        self.logger = logging.getLogger(__name__)

    @classmethod
    def wrap(
        cls,
        generator: SampleGenerator,
        expert_ckpt: str | Path,
        min_confidence: float | None,
        max_rounds: int = 10,
        device: str | torch.device = "cpu",
    ) -> SampleGenerator:
        """``generator`` filtered by the expert of ``expert_ckpt`` (a bundle's ``train_expert.json`` checkpoint,
        :meth:`~medsyn_monai.networks.nets.ExpertClassifier.from_checkpoint`), or ``generator`` itself when
        ``min_confidence`` is ``None`` (then the expert is not loaded): what a bundle config's ``filter_confidence``
        key switches.

        Example:
            >>> class Painter:
            ...     def generate(self, num_samples=None, labels=None, seed=None): ...
            >>> painter = Painter()
            >>> ConfidenceFilteredGenerator.wrap(painter, "no/expert/here.pt", None) is painter
            True
        """
        if min_confidence is None:
            return generator
        expert = ExpertClassifier.from_checkpoint(expert_ckpt)
        return cls(generator, expert, float(min_confidence), max_rounds=max_rounds, device=device)

    def confidence(self, images: torch.Tensor, labels: Sequence[int]) -> torch.Tensor:
        """The classifier's softmax probability of each image's intended class (generator labels)."""
        if isinstance(self.classifier, nn.Module):
            self.classifier.to(self.device).eval()
        targets = torch.as_tensor([self._target(int(g)) for g in labels], dtype=torch.long)
        probs = []
        with torch.no_grad():
            for start in range(0, images.shape[0], self.batch_size):
                batch = images[start : start + self.batch_size].to(self.device).float()
                probs.append(torch.softmax(self.classifier(batch).float(), dim=1).cpu())
        p = torch.cat(probs)
        if int(targets.max()) >= p.shape[1]:
            raise ValueError(
                f"the classifier has {p.shape[1]} classes but a generator label maps to class {int(targets.max())}: "
                "give classifier_labels (the classifier's class index of each generator label)."
            )
        return p.gather(1, targets.view(-1, 1)).view(-1)

    def _target(self, label: int) -> int:
        return label if self.classifier_labels is None else self.classifier_labels[label]

    def generate(
        self, num_samples: int | None = None, labels: Sequence[int] | None = None, seed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images of ``labels`` (in that order) that pass the confidence test; see the class docstring.

        Raises:
            ValueError: no ``labels`` (the filter needs an intended class per image).
            RuntimeError: a class still lacks kept images after ``max_rounds`` rounds.
        """
        if labels is None:
            raise ValueError("ConfidenceFilteredGenerator needs labels: the intended class of every image.")
        wanted = [int(c) for c in labels]
        base_seed = 0 if seed is None else int(seed)
        kept: dict[int, list[torch.Tensor]] = {c: [] for c in sorted(set(wanted))}
        need = {c: wanted.count(c) for c in kept}
        generated = dict.fromkeys(kept, 0)
        for round_index in range(self.max_rounds):
            missing = {c: need[c] - len(kept[c]) for c in kept if len(kept[c]) < need[c]}
            if not missing:
                break
            # round 0 draws exactly the requested images (those the unfiltered generator gives); later rounds oversample
            factor = 1.0 if round_index == 0 else self.oversample
            batch_labels = [c for c, m in missing.items() for _ in range(math.ceil(m * factor))]
            images, _ = self.generator.generate(labels=batch_labels, seed=base_seed + round_index * 7919)
            confidence = self.confidence(images, batch_labels)
            for image, c, p in zip(images, batch_labels, confidence.tolist(), strict=True):
                generated[c] += 1
                if p >= self.min_confidence and len(kept[c]) < need[c]:
                    kept[c].append(image.float().cpu())
        self.report = {
            str(c): {"requested": need[c], "generated": generated[c], "kept": len(kept[c]),
                     "acceptance": len(kept[c]) / max(1, generated[c])}
            for c in kept
        }  # fmt: skip
        short = {c: need[c] - len(kept[c]) for c in kept if len(kept[c]) < need[c]}
        if short:
            raise RuntimeError(
                f"after {self.max_rounds} rounds, generator label(s) {sorted(short)} still lack {short} images with "
                f"classifier confidence >= {self.min_confidence} ({self.report}): lower min_confidence or raise "
                "max_rounds / oversample (a class the classifier rarely recognises may need a better model)."
            )
        self.logger.info(f"confidence filter >= {self.min_confidence}: {self.report}")
        order = {c: iter(kept[c]) for c in kept}
        images_out = torch.stack([next(order[c]) for c in wanted])
        return images_out, torch.as_tensor(wanted, dtype=torch.long)
