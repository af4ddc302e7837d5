"""ClassifierUtilityStudy: rows and mix sizes, known answers on separable data, settings actually applied, std over
seeds, the dataset-pair table, the written files, and its input checks."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

import medsyn_monai.apps.evaluation.classifier as classifier_module
from medsyn_monai.apps.evaluation import ClassifierUtilityStudy

SIZE = 12  # px: at least the SSIM window (11) for the dataset-pair table


def _real(counts=(12, 6), seed=0):
    """Separable toy images: class 0 around -1, class 1 around +1 (``counts`` images per class)."""
    g = torch.Generator().manual_seed(seed)
    return [{"image": sign + 0.1 * torch.randn(1, SIZE, SIZE, generator=g), "label": torch.tensor(c)}
            for c, (sign, n) in enumerate(zip((-1.0, 1.0), counts, strict=True)) for _ in range(n)]  # fmt: skip


def _factory():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(SIZE * SIZE, 2))


class _Painter:
    """A 'generator' painting the class sign (generator label 7 -> +1, else -1) with seeded noise; records calls."""

    def __init__(self, size=SIZE):
        self.size, self.calls = size, []

    def generate(self, num_samples=None, labels=None, seed=None):
        self.calls.append((list(labels), seed))
        g = torch.Generator().manual_seed(seed)
        signs = torch.tensor([1.0 if lab == 7 else -1.0 for lab in labels]).view(-1, 1, 1, 1)
        return signs + 0.1 * torch.randn(len(labels), 1, self.size, self.size, generator=g), torch.as_tensor(labels)


class _CountingFlip:
    """A dict transform that flips the image and counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, item):
        self.calls += 1
        return {**item, "image": torch.flip(item["image"], dims=(-1,))}


def test_rows_mix_sizes_files_and_known_answers(tmp_path):
    real, test = _real((12, 6), 0), _real((6, 6), 1)
    gen, flip = _Painter(), _CountingFlip()
    study = ClassifierUtilityStudy(
        _factory, real, test, ["normal", "pneumonia"], generator=gen, generator_labels=[3, 7], mix_ratios=[1, 2],
        real_fractions=[1.0, 0.5], classifier_seeds=[0, 1], train_transform=flip, max_epochs=8, finetune_epochs=2,
        learning_rate=0.1, generation_seed=5, val_data=real, feature_extractor=torch.nn.AdaptiveAvgPool2d(1),
        extractor_name="mean intensity", ssim_pairs=20, output_dir=tmp_path,
    )  # fmt: skip
    m = study.run()
    # generated once, with the generator's class indices: the largest mix (2 x 12 and 2 x 6), class by class
    assert gen.calls == [([3] * 24 + [7] * 12, 5)]
    rows = ["real_only", "synthetic_only", "real_plus_synthetic_1to1", "real_plus_synthetic_1to2",
            "synthetic_then_real_100", "synthetic_then_real_50", "real_only_50"]  # fmt: skip
    settings = ["noaug_unweighted", "noaug_weighted", "aug_unweighted", "aug_weighted"]
    assert study.rows() == rows
    report = json.loads((tmp_path / "utility.json").read_text())
    assert list(report["runs"]) == rows and all(list(report["runs"][r]) == settings for r in rows)
    # separable data: trained on real images or on synthetic images alone, every test image is right
    for setting in settings:
        for row in ("real_only", "synthetic_only", "real_plus_synthetic_1to2"):
            assert m[f"accuracy_{row}_{setting}_mean"] == 1.0 and m[f"accuracy_{row}_{setting}_std"] == 0.0, row
            assert m[f"per_class_accuracy_pneumonia_{row}_{setting}_mean"] == 1.0
        assert m[f"roc_auc_real_only_{setting}_mean"] == 1.0
    # mix sizes: as many / twice as many synthetic as real images, in the real class proportions (12 : 6)
    per_class = report["settings"]["synthetic_per_class"]
    assert per_class["real_plus_synthetic_1to1"] == [12, 6] and per_class["real_plus_synthetic_1to2"] == [24, 12]
    assert per_class["synthetic_only"] == [24, 12] and report["settings"]["num_synthetic"] == 36
    runs = report["runs"]
    assert [(r["num_real"], r["num_synthetic"]) for r in runs["real_plus_synthetic_1to1"]["aug_weighted"]] == [
        (18, 18),
        (18, 18),
    ]
    assert runs["real_plus_synthetic_1to2"]["noaug_unweighted"][0]["num_synthetic"] == 36
    assert runs["real_only_50"]["noaug_weighted"][1]["num_real"] == 9  # half of each class: 6 + 3
    assert runs["synthetic_then_real_50"]["noaug_weighted"][0]["num_synthetic"] == 36
    assert [r["seed"] for r in runs["real_only"]["aug_unweighted"]] == [0, 1]
    # the summaries are the mean and (population) std of every seed's numbers
    for row in rows:
        for setting in settings:
            values = [r["balanced_accuracy"] for r in runs[row][setting]]
            summary = report["summary"][row][setting]["balanced_accuracy"]
            assert summary["mean"] == pytest.approx(np.mean(values)) and summary["std"] == pytest.approx(np.std(values))
    # the dataset-pair table
    pairs = [(p["set_a"], p["set_b"]) for p in report["dataset_pairs"]]
    assert pairs == [("real_train", "real_test"), ("real_train", "synthetic"), ("real_test", "synthetic"),
                     ("synthetic_a", "synthetic_b")]  # fmt: skip
    halves = report["dataset_pairs"][3]
    assert (halves["num_a"], halves["num_b"]) == (18, 18)  # two class-stratified halves of the 36 images
    for p in report["dataset_pairs"]:
        assert -1.0 <= p["ssim"] <= 1.0 and p["fid"] >= 0.0
        assert m[f"fid_{p['set_a']}_vs_{p['set_b']}"] == p["fid"]
    # train (12 dark : 6 bright) vs test (6 : 6): the mean intensities differ, unlike the two synthetic halves
    assert m["fid_synthetic_a_vs_synthetic_b"] < m["fid_real_train_vs_real_test"]
    # the CSV: one line per row and setting, mean and std columns
    with open(tmp_path / "utility.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert [(r["condition"], r["setting"]) for r in lines] == [(r, s) for r in rows for s in settings]
    for column in ("accuracy_mean", "accuracy_std", "roc_auc_mean", "roc_auc_std", "balanced_accuracy_std",
                   "f1_macro_mean", "per_class_accuracy_normal_mean", "per_class_accuracy_pneumonia_std",
                   "num_real", "num_synthetic", "num_seeds", "augment", "class_weighted"):  # fmt: skip
        assert column in lines[0], column
    assert float(lines[0]["accuracy_mean"]) == 1.0 and lines[0]["num_seeds"] == "2"
    table = (tmp_path / "utility.md").read_text()
    assert "| real only | 18 | 0 | 1.000 ± 0.000 |" in table and "| real plus synthetic 1:2 | 18 | 36 |" in table
    assert "augmentation, weighted loss: accuracy" in table and "## Per-class accuracy (recall)" in table
    assert "| synthetic_a | synthetic_b | 18 | 18 |" in table and "FID (mean intensity)" in table
    with Image.open(tmp_path / "utility.png") as image:
        assert image.width >= 960 and image.height == 960  # two panels: accuracy and ROC AUC


def test_augmentation_and_class_weights_are_applied(monkeypatch):
    """The settings change the training: the transform runs on every training item (real and synthetic) only with
    augmentation, and the loss gets class weights of the run's labels only when class-weighted."""
    weighed = []

    def spy(labels, num_classes):
        weighed.append(torch.bincount(torch.as_tensor(labels), minlength=num_classes).tolist())
        return original(labels, num_classes)

    original = classifier_module.class_weights
    monkeypatch.setattr(classifier_module, "class_weights", spy)
    flip = _CountingFlip()
    study = ClassifierUtilityStudy(
        _factory, _real((12, 6)), _real((6, 6), 1), ["a", "b"], synthetic_data=_real((12, 6), 2),
        conditions=["real_only", "real_plus_synthetic"], mix_ratios=[1], augment_options=[False, True],
        class_weighted_options=[False, True], classifier_seeds=[0], train_transform=flip, max_epochs=2,
        pair_table=False,
    )  # fmt: skip
    study.run()
    # 2 augmented settings x 2 epochs x (18 real + 18 real and 18 synthetic) items; none without augmentation
    assert flip.calls == 2 * 2 * (18 + 36)
    # one weighted loss per run of the 2 weighted settings, with the training set's class counts
    assert weighed == [[12, 6], [24, 12]] * 2


def test_std_is_over_seeds(monkeypatch):
    """Each seed's test result enters the mean and standard deviation once (here accuracy = seed / 10)."""

    def fake_test(self, network, loader):
        seed = len(calls)
        calls.append(seed)
        return {"accuracy": 0.1 * seed, "balanced_accuracy": None, "roc_auc": 1.0, "f1_macro": 0.5,
                "per_class_accuracy": {"a": 0.1 * seed, "b": None}, "best_epoch": 1}  # fmt: skip

    calls: list[int] = []
    monkeypatch.setattr(ClassifierUtilityStudy, "_test", fake_test)
    study = ClassifierUtilityStudy(
        _factory, _real(), _real(), ["a", "b"], synthetic_data=_real((24, 12)), conditions=["real_only"],
        augment_options=[False], class_weighted_options=[True], classifier_seeds=[3, 4, 5], max_epochs=1,
        pair_table=False,
    )  # fmt: skip
    m = study.run()
    assert m["accuracy_real_only_noaug_weighted_mean"] == pytest.approx(0.1)  # seeds give 0, 0.1, 0.2
    assert m["accuracy_real_only_noaug_weighted_std"] == pytest.approx(np.std([0.0, 0.1, 0.2]))
    assert m["roc_auc_real_only_noaug_weighted_std"] == 0.0
    assert m["balanced_accuracy_real_only_noaug_weighted_mean"] is None  # undefined in every run
    assert m["per_class_accuracy_b_real_only_noaug_weighted_mean"] is None


def test_samples_per_class_and_too_few_synthetic_images():
    gen = _Painter()
    study = ClassifierUtilityStudy(
        _factory, _real((12, 6)), _real(), ["a", "b"], generator=gen, samples_per_class=[30, 4], mix_ratios=[1],
        conditions=["synthetic_only", "real_plus_synthetic"], classifier_seeds=[0], augment_options=[False],
        class_weighted_options=[False], max_epochs=1, pair_table=False,
    )  # fmt: skip
    counts = study.synthetic_counts()
    assert counts == {"synthetic_only": [30, 4], "real_plus_synthetic_1to1": [12, 6], "generated": [30, 6]}
    m = study.run()
    assert gen.calls[0][0] == [0] * 30 + [1] * 6 and "accuracy_synthetic_only_noaug_unweighted_mean" in m
    short = ClassifierUtilityStudy(
        _factory, _real((12, 6)), _real(), ["a", "b"], synthetic_data=_real((12, 6)), mix_ratios=[1, 2],
        classifier_seeds=[0], augment_options=[False], class_weighted_options=[False], pair_table=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match="needs 24 synthetic images of class 'a' but there are 12"):
        short.run()


# epochs of every fit, in order: real only, pre-training, fine-tuning on 100 %, then per fraction f (0.5, 0.25) the
# fine-tuning and the real-only baseline; scaled: 2 / 0.5 = 4, 6 / 0.5 = 12, 2 / 0.25 = 8, 6 / 0.25 = 24
@pytest.mark.parametrize(
    "subset_epochs, expected", [("same", [6, 6, 2, 2, 6, 2, 6]), ("scaled", [6, 6, 2, 4, 12, 8, 24])]
)
def test_subset_epochs(monkeypatch, tmp_path, subset_epochs, expected):
    """``scaled`` trains the runs on a real fraction f for epochs / f (as many images seen as on the whole set), in
    both the real-only baseline and the fine-tuning; ``same`` keeps the whole set's epochs."""
    epochs: list[int] = []
    original = classifier_module.fit_classifier

    def spy(network, data, num_classes, max_epochs, **kwargs):
        epochs.append(max_epochs)
        return original(network, data, num_classes, max_epochs, **kwargs)

    monkeypatch.setattr("medsyn_monai.apps.evaluation.utility.fit_classifier", spy)
    study = ClassifierUtilityStudy(
        _factory, _real((12, 8)), _real((6, 6), 1), ["a", "b"], synthetic_data=_real((12, 8), 2),
        conditions=["real_only", "synthetic_then_real"], mix_ratios=[1], real_fractions=[1.0, 0.5, 0.25],
        augment_options=[False],
        class_weighted_options=[True], classifier_seeds=[0], max_epochs=6, finetune_epochs=2,
        subset_epochs=subset_epochs, pair_table=False, output_dir=tmp_path,
    )  # fmt: skip
    study.run()
    assert epochs == expected
    report = json.loads((tmp_path / "utility.json").read_text())["settings"]
    assert report["subset_epochs"] == subset_epochs
    assert report["epochs_on_subset"] == dict(zip(
        ["synthetic_then_real_100", "synthetic_then_real_50", "synthetic_then_real_25", "real_only_50", "real_only_25"],
        [2, expected[3], expected[5], expected[4], expected[6]], strict=True))  # fmt: skip
    table = (tmp_path / "utility.md").read_text()
    assert ("scaled by 1 / f" in table) == (subset_epochs == "scaled")


def test_pair_table_fails_before_any_training(monkeypatch):
    """Images below the SSIM window stop the study at the pair table, before hours of training."""

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the pair table was checked")

    monkeypatch.setattr("medsyn_monai.apps.evaluation.utility.fit_classifier", no_training)
    tiny = [{"image": torch.zeros(1, 4, 4), "label": torch.tensor(c)} for c in (0, 0, 1, 1)]
    study = ClassifierUtilityStudy(_factory, tiny, tiny, ["a", "b"], synthetic_data=tiny * 4, classifier_seeds=[0],
                                   augment_options=[False])  # fmt: skip
    with pytest.raises(ValueError, match="11"):
        study.run()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"synthetic_data": None}, "exactly one of generator"),
        ({"generator": _Painter()}, "exactly one of generator"),
        ({"class_names": ["a"]}, "at least 2 distinct classes"),
        ({"conditions": ["real_only", "real_plus_syntetic"]}, "unknown: \\['real_plus_syntetic'\\]"),
        ({"conditions": "real_only"}, "non-empty list"),
        ({"mix_ratios": [1, 0]}, "mix_ratios must be numbers > 0"),
        ({"mix_ratios": [-2]}, "mix_ratios must be numbers > 0"),
        ({"mix_ratios": [1, 1.0]}, "distinct"),
        ({"mix_ratios": []}, "mix_ratios is empty"),
        ({"real_fractions": [0.0]}, "real_fractions must be fractions in \\(0, 1\\]"),
        ({"real_fractions": [1.5]}, "real_fractions must be fractions in \\(0, 1\\]"),
        ({"real_fractions": [float("nan")]}, "real_fractions"),
        ({"real_fractions": [0.1, 0.1000000001]}, "distinct"),
        ({"augment_options": [True], "train_transform": None}, "no train_transform"),
        ({"augment_options": []}, "augment_options must be a non-empty list"),
        ({"class_weighted_options": [True, "yes"]}, "must not repeat"),
        ({"class_weighted_options": ["maybe"]}, "class_weighted_options: expected a boolean"),
        ({"classifier_seeds": []}, "classifier_seeds"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"subset_epochs": "longer"}, "subset_epochs must be one of \\['same', 'scaled'\\]"),
        ({"samples_per_class": [3, 0]}, "samples_per_class"),
        ({"samples_per_class": [3]}, "samples_per_class"),
        ({"generator_labels": [0]}, "generator_labels has 1"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"class_names": ["a", "b"], "synthetic_data": [], "train_transform": _CountingFlip(), **kwargs}
    names = args.pop("class_names")
    with pytest.raises(ValueError, match=match):
        ClassifierUtilityStudy(_factory, [], [], names, **args)
