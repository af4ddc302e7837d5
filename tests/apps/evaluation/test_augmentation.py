"""SyntheticAugmentationStudy: synthetic image counts per class and the generator's label mapping."""

from __future__ import annotations

import pytest
import torch

from medsyn_monai.apps.evaluation import SyntheticAugmentationStudy


class _PaintByLabel:
    """A deterministic stand-in for a diffusion sampler: image value = generator label (records the labels asked)."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def generate(self, num_samples=None, labels=None, seed=None):
        self.asked = list(labels)
        images = torch.stack([torch.full((1, 4, 4), float(c)) for c in labels])
        return images, torch.as_tensor(labels)


def test_synthetic_augmentation_counts_and_label_mapping():
    train = [{"image": torch.zeros(1, 4, 4), "label": torch.tensor(c)} for c in [0, 0, 0, 1]]
    gen = _PaintByLabel()
    ev = SyntheticAugmentationStudy(lambda: torch.nn.Linear(1, 2), train, train, gen, ["mel", "nev"],
                                        generator_labels=[5, 7], synthetic_fraction=0.5)  # fmt: skip
    assert ev.synthetic_counts() == [3, 1]  # real class proportions, as many synthetic as real images
    images, labels = ev.synthetic_set()
    assert labels.tolist() == [0, 0, 0, 1] and gen.asked == [5, 5, 5, 7]  # generator indices of the classes
    assert images[:, 0, 0, 0].tolist() == [5.0, 5.0, 5.0, 7.0]
    third = SyntheticAugmentationStudy(lambda: torch.nn.Linear(1, 2), train, train, gen, ["mel", "nev"],
                                           synthetic_fraction=0.25)  # fmt: skip
    assert third.synthetic_counts() == [1, 0]  # round(3 / 3), round(1 / 3)
    with pytest.raises(ValueError, match="synthetic_fraction"):
        SyntheticAugmentationStudy(lambda: None, train, train, gen, ["a", "b"], synthetic_fraction=1.0)
    with pytest.raises(ValueError, match="generator_labels has 1"):
        SyntheticAugmentationStudy(lambda: None, train, train, gen, ["a", "b"], generator_labels=[0])
