from __future__ import annotations

import json

import pytest
import torch

from medsyn_monai.apps.evaluation import SyntheticPretrainingStudy


def _real(n_per_class=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for c, sign in enumerate((-1.0, 1.0)):
        for _ in range(n_per_class):
            items.append({"image": sign + 0.1 * torch.randn(1, 2, 2, generator=g), "label": torch.tensor(c)})
    return items


def _factory():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))


def _zero_factory():
    net = _factory()
    torch.nn.init.zeros_(net[1].weight)  # without gradient from the inputs, the weights stay 0
    return net


class _Painter:
    """A 'generator' whose images are the class sign (informative) or zeros (uninformative); records its calls."""

    def __init__(self, informative=True):
        self.informative, self.calls = informative, []

    def generate(self, num_samples=None, labels=None, seed=None):
        self.calls.append((list(labels), seed))
        signs = torch.tensor([1.0 if lab == 7 else -1.0 for lab in labels]).view(-1, 1, 1, 1)
        images = signs.expand(-1, 1, 2, 2).clone() if self.informative else torch.zeros(len(labels), 1, 2, 2)
        return images, torch.as_tensor(labels)


def test_rows_files_and_known_answers(tmp_path):
    real, test = _real(10, 0), _real(10, 1)
    gen = _Painter(informative=True)
    ev = SyntheticPretrainingStudy(
        _factory, real, test, ["normal", "pneumonia"], generator=gen, samples_per_class=6, generator_labels=[3, 7],
        real_fractions=[1.0, 0.1, 0.0], classifier_seeds=[0, 1], pretrain_epochs=15, finetune_epochs=2,
        learning_rate=0.1, generation_seed=5, output_dir=tmp_path, val_data=real,
    )  # fmt: skip
    m = ev.run()
    assert gen.calls == [([3] * 6 + [7] * 6, 5)]  # generated once, generator class indices, generation seed
    rows = {"synthetic_only", "synthetic_then_real_100", "real_only_100", "synthetic_then_real_10", "real_only_10"}
    assert {k[len("accuracy_") : -len("_mean")] for k in m if k.startswith("accuracy_") and k.endswith("_mean")} == rows
    assert m["accuracy_synthetic_only_mean"] == 1.0 and m["accuracy_synthetic_only_std"] == 0.0
    assert m["accuracy_synthetic_then_real_100_mean"] == 1.0
    report = json.loads((tmp_path / "pretraining.json").read_text())
    assert [r["seed"] for r in report["runs"]["real_only_10"]] == [0, 1]
    assert report["runs"]["real_only_10"][0]["num_real"] == 2  # 10 % of 10 per class
    assert report["runs"]["synthetic_only"][0]["num_real"] == 0
    table = (tmp_path / "pretraining.md").read_text()
    assert "| synthetic only | 0 | 1.000 ± 0.000 |" in table and "real only 10" in table
    assert (tmp_path / "confusion" / "synthetic_only_seed0_confusion_matrix.png").is_file()


def test_uninformative_synthetic_images_give_chance_until_fine_tuned():
    real, test = _real(10, 0), _real(10, 1)
    ev = SyntheticPretrainingStudy(
        _zero_factory, real, test, ["a", "b"], generator=_Painter(informative=False), samples_per_class=8,
        generator_labels=[3, 7], real_fractions=[0.0, 1.0], classifier_seeds=[0], pretrain_epochs=5,
        finetune_epochs=20, learning_rate=0.1,
    )  # fmt: skip
    m = ev.run()
    # all-zero images carry no class: the classifier predicts one class for every input, i.e. 50 % here
    assert m["accuracy_synthetic_only_mean"] == 0.5 and m["balanced_accuracy_synthetic_only_mean"] == 0.5
    assert m["accuracy_synthetic_then_real_100_mean"] == 1.0  # fine-tuning on the real images recovers


def test_real_subset_is_stratified_and_seeded():
    labels = [0] * 30 + [1] * 10
    real = [{"image": torch.zeros(1, 2, 2), "label": torch.tensor(c)} for c in labels]
    ev = SyntheticPretrainingStudy(_factory, real, real, ["a", "b"], synthetic_data=real)
    sub = ev.real_subset(0.1, seed=0)
    assert sum(labels[i] == 0 for i in sub) == 3 and sum(labels[i] == 1 for i in sub) == 1
    assert sub == ev.real_subset(0.1, seed=0) and sub != ev.real_subset(0.1, seed=1)
    assert len(ev.real_subset(1.0, seed=0)) == 40


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one of generator"),
        ({"synthetic_data": [], "generator": _Painter()}, "exactly one of generator"),
        ({"synthetic_data": [], "real_fractions": [1.5]}, "real_fractions"),
        ({"synthetic_data": [], "classifier_seeds": []}, "classifier_seeds"),
        ({"synthetic_data": [], "samples_per_class": [1]}, "samples_per_class"),
        ({"synthetic_data": [], "finetune_epochs": 0}, "finetune_epochs"),
        ({"synthetic_data": [], "real_fractions": [0.1, 0.1000000001]}, "distinct"),
        ({"generator": _Painter(), "samples_per_class": [3, 0]}, "without synthetic images"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticPretrainingStudy(_factory, [], [], ["a", "b"], **kwargs)
