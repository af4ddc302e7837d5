from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from medsyn_monai.apps.evaluation import GenerationAccuracyStudy
from tests._helpers import tiny_unet


class LabelPainter:
    """A generator whose images encode the requested class (value = label / 10) plus seeded noise."""

    def __init__(self):
        self.calls = []

    def generate(self, num_samples=None, labels=None, seed=None):
        self.calls.append((list(labels), seed))
        g = torch.Generator().manual_seed(seed)
        lab = torch.as_tensor(labels)
        images = lab.float().reshape(-1, 1, 1, 1) / 10 + 0.01 * torch.randn(len(labels), 1, 4, 4, generator=g)
        return images, lab


class Oracle(torch.nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x):
        pred = (x.mean(dim=(1, 2, 3)) * 10).round().long().clamp(0, self.num_classes - 1)
        return torch.nn.functional.one_hot(pred, self.num_classes).float()


class Constant(torch.nn.Module):
    def __init__(self, num_classes, cls=0):
        super().__init__()
        self.num_classes, self.cls = num_classes, cls

    def forward(self, x):
        return torch.nn.functional.one_hot(torch.full((x.shape[0],), self.cls), self.num_classes).float()


def test_oracle_scores_one_and_constant_one_over_c(tmp_path):
    names = ["a", "b", "c", "d"]
    gen = LabelPainter()
    real = [{"image": torch.full((4, 1, 4, 4), 0.2), "label": torch.full((4,), 2)}]
    res = GenerationAccuracyStudy(gen, Oracle(4), names, num_seeds=3, samples_per_class=5, output_dir=tmp_path,
                                      real_data_loader=real).run()  # fmt: skip
    assert res["generation_accuracy_mean"] == 1.0 and res["generation_accuracy_std"] == 0.0
    assert res["generation_accuracy_per_class"] == {n: 1.0 for n in names}
    assert res["generation_confusion_matrix"] == [[15 if i == j else 0 for j in range(4)] for i in range(4)]
    assert res["expert_accuracy_real"] == 1.0
    assert json.loads((tmp_path / "generation_accuracy.json").read_text())["num_seeds"] == 3
    for png in ("generation_confusion_synthetic.png", "generation_confusion_real.png"):
        assert Image.open(tmp_path / png).size[0] > 100
    # seeds base_seed + k, identical class order each time: two models see identical noise
    assert [c[1] for c in gen.calls] == [0, 1, 2] and all(c[0] == gen.calls[0][0] for c in gen.calls)

    res = GenerationAccuracyStudy(LabelPainter(), Constant(4), names, num_seeds=2, samples_per_class=3).run()
    assert res["generation_accuracy_mean"] == pytest.approx(1 / 4)
    assert res["generation_accuracy_per_class"] == {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0}


def test_exclude_classes_and_errors():
    res = GenerationAccuracyStudy(LabelPainter(), Constant(3, cls=1), ["empty", "x", "y"], num_seeds=1,
                                      samples_per_class=2, exclude_classes=["empty"]).run()  # fmt: skip
    assert res["classes_evaluated"] == ["x", "y"] and res["generation_accuracy_mean"] == 0.5
    with pytest.raises(ValueError, match="unknown class"):
        GenerationAccuracyStudy(LabelPainter(), Constant(2), ["a", "b"], exclude_classes=["z"])
    with pytest.raises(ValueError, match="every class"):
        GenerationAccuracyStudy(LabelPainter(), Constant(1), ["a"], exclude_classes=[0])


def test_with_a_real_diffusion_sampler(tmp_path):
    """End to end with DiffusionSampler.generate: same seeds give the same images for two runs."""
    from monai.networks.schedulers import DDIMScheduler

    from medsyn_monai.apps.generation import DiffusionSampler
    from medsyn_monai.inferers import ConditionalDiffusionInferer

    net = tiny_unet(num_classes=2)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    sched = DDIMScheduler(100)
    sampler = DiffusionSampler(net, ConditionalDiffusionInferer(sched), sched, tmp_path / "model.pt", tmp_path, 4,
                               (1, 8, 8), num_inference_steps=2, class_names=["a", "b"], verbose=False)  # fmt: skip
    sampler.load_weights()
    a, la = sampler.generate(labels=[0, 1, 1], seed=5)
    b, _ = sampler.generate(labels=[0, 1, 1], seed=5)
    assert a.shape == (3, 1, 8, 8) and la.tolist() == [0, 1, 1] and torch.equal(a, b)
    res = GenerationAccuracyStudy(sampler, Constant(2, cls=1), ["a", "b"], num_seeds=2,
                                      samples_per_class=2).run()  # fmt: skip
    assert res["generation_accuracy_mean"] == 0.5
