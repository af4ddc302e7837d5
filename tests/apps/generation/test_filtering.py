"""ConfidenceFilteredGenerator: only images the classifier assigns to their intended class are kept, in order."""

from __future__ import annotations

import pytest
import torch

from medsyn_monai.apps.generation import ConfidenceFilteredGenerator


class Painter:
    """Class c -> constant images of value (+1 if c else -1) * strength; strength cycles with the image's index and
    the seed, so some images are faint. Counts its calls."""

    def __init__(self, strengths=(1.0, 0.1, 1.0)):
        self.strengths, self.calls = strengths, []

    def generate(self, num_samples=None, labels=None, seed=None):
        self.calls.append((list(labels), seed))
        sign = torch.tensor([1.0 if c else -1.0 for c in labels])
        strength = torch.tensor([self.strengths[(i + seed) % len(self.strengths)] for i in range(len(labels))])
        return (sign * strength).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone(), torch.tensor(labels)


class Judge(torch.nn.Module):
    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([-5 * m, 5 * m], dim=1)


def test_keeps_only_confident_images_in_the_requested_order():
    painter = Painter()
    gen = ConfidenceFilteredGenerator(painter, Judge(), min_confidence=0.9, oversample=2)
    labels = [1, 0, 1, 1, 0, 0]
    images, out_labels = gen.generate(labels=labels, seed=3)
    assert out_labels.tolist() == labels
    means = images.flatten(1).mean(1)
    assert torch.all(means.abs() == 1.0)  # no faint image (confidence 0.73) was kept
    assert torch.all((means > 0) == torch.tensor(labels, dtype=torch.bool))
    assert painter.calls[0] == (sorted(labels), 3)  # round 0: exactly the request, at the given seed
    assert len(painter.calls) >= 2 and painter.calls[1][1] != 3  # a second round with another seed
    for c in ("0", "1"):
        r = gen.report[c]
        assert r["kept"] == r["requested"] == 3 and r["generated"] > 3 and r["acceptance"] == r["kept"] / r["generated"]
    # deterministic: the same labels and seed give the same images
    again, _ = ConfidenceFilteredGenerator(Painter(), Judge(), min_confidence=0.9, oversample=2).generate(
        labels=labels, seed=3
    )
    assert torch.equal(images, again)


def test_threshold_zero_is_the_plain_generator():
    images, _ = ConfidenceFilteredGenerator(Painter(), Judge(), min_confidence=0.0).generate(labels=[0, 1, 1], seed=0)
    plain, _ = Painter().generate(labels=[0, 1, 1], seed=0)
    assert torch.equal(images, plain.float())


def test_classifier_label_mapping():
    # the classifier's classes in the other order: generator label 0 (negative images) is classifier class 1
    flipped = ConfidenceFilteredGenerator(Painter((1.0,)), Judge(), 0.9, classifier_labels=[1, 0], max_rounds=2)
    with pytest.raises(RuntimeError, match=r"label\(s\) \[0, 1\] still lack"):
        flipped.generate(labels=[0, 1], seed=0)  # every image is confidently the *other* class
    assert flipped.report["0"]["kept"] == 0 and flipped.report["0"]["generated"] > 1
    with pytest.raises(ValueError, match="give classifier_labels"):
        ConfidenceFilteredGenerator(Painter(), Judge(), 0.5, classifier_labels=[0, 2]).generate(labels=[1], seed=0)


def test_gives_up_with_a_clear_error_and_bad_arguments():
    never = ConfidenceFilteredGenerator(Painter((0.1,)), Judge(), min_confidence=0.9, max_rounds=3)
    with pytest.raises(RuntimeError, match="after 3 rounds.*lower min_confidence"):
        never.generate(labels=[0, 1], seed=0)
    with pytest.raises(ValueError, match="needs labels"):
        never.generate(num_samples=4, seed=0)
    for bad in ({"min_confidence": 1.0}, {"min_confidence": -0.1}, {"min_confidence": 0.5, "oversample": 0.5},
                {"min_confidence": 0.5, "max_rounds": 0}):  # fmt: skip
        with pytest.raises(ValueError):
            ConfidenceFilteredGenerator(Painter(), Judge(), **bad)
