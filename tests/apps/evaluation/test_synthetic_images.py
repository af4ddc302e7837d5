"""SyntheticImageStudy: known answers on tiny blob images, report files and input validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from medsyn_monai.apps.evaluation.synthetic_images import SyntheticImageStudy
from medsyn_monai.networks.nets.feature_extractor import FeatureExtractor

LEVELS = (-0.5, 0.0, 0.5)  # mean intensity of the images of class 0, 1, 2


SIZE = 24


FAST = {"kid_subsets": 10, "ssim_pairs": 60}


def blob_images(n: int, seed: int = 0, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` grey images of 2-3 random Gaussian blobs; class ``i % 3`` sets the mean intensity to ``LEVELS[i % 3]``."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(LEVELS)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    images = torch.zeros(n, 1, size, size)
    for i in range(n):
        for _ in range(2 + int(torch.randint(0, 2, (1,), generator=g))):
            cy, cx = (torch.rand(2, generator=g) * size).tolist()
            sigma = 1.5 + 3.0 * float(torch.rand(1, generator=g))
            amplitude = 0.1 + 0.15 * float(torch.rand(1, generator=g))
            images[i, 0] += amplitude * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        jitter = 0.04 * (float(torch.rand(1, generator=g)) - 0.5)
        images[i] += LEVELS[int(labels[i])] + jitter - images[i].mean()
    return images.clamp(-1.0, 1.0), labels


class MeanOracle(nn.Module):
    """Reads the class from the image mean (the nearest of ``LEVELS``)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("levels", torch.tensor(LEVELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x.mean(dim=(1, 2, 3))[:, None] - self.levels) ** 2)


class ConstantExpert(nn.Module):
    """Always predicts class 0."""

    num_classes = len(LEVELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], self.num_classes)
        logits[:, 0] = 1.0
        return logits


@pytest.fixture(scope="module")
def real() -> tuple[torch.Tensor, torch.Tensor]:
    return blob_images(60, seed=0)


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return FeatureExtractor(nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU()))


@pytest.fixture(scope="module")
def shifted(real) -> torch.Tensor:
    noise = torch.randn(real[0].shape, generator=torch.Generator().manual_seed(1))
    return (real[0] + 0.3 + 0.1 * noise).clamp(-1.0, 1.0)


def test_identical_and_shifted_sets_known_answers(real, extractor, shifted):
    images, _ = real
    same = SyntheticImageStudy(images, images.clone(), feature_extractor=extractor, **FAST).run()
    moved = SyntheticImageStudy(images, shifted, feature_extractor=extractor, **FAST).run()

    assert same["num_real"] == same["num_synthetic"] == 60
    assert same["fid"] < 1e-6
    assert same["precision"] == same["recall"] == 1.0
    assert same["density"] == same["coverage"] == 1.0
    assert same["chi2_pvalue"] > 0.05 and same["chi2_intensity"] == pytest.approx(0.0)
    assert same["kl_divergence"] == pytest.approx(0.0)
    assert same["ssim_intra_real"] == pytest.approx(same["ssim_intra_synthetic"])

    assert moved["fid"] > 0.01 and moved["fid"] > 1e4 * max(same["fid"], 1e-12)
    assert abs(same["kid_mean"]) < 0.1 * moved["kid_mean"]
    assert moved["chi2_pvalue"] < 0.01
    assert moved["kl_divergence"] > 0.1
    assert moved["precision"] < 1.0 and moved["coverage"] < 1.0
    # without an expert or references, none of their keys
    assert not any(k.startswith(("expert_", "ssim_cross_", "fid_", "chi2_class")) for k in moved)


def test_without_feature_extractor_no_feature_metrics(real):
    images, _ = real
    metrics = SyntheticImageStudy(images, images.clone(), ssim_pairs=20).run()
    assert not {"fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage"} & set(metrics)
    assert {"ssim_intra_real", "ssim_intra_synthetic", "chi2_intensity", "chi2_pvalue", "kl_divergence"} <= set(metrics)


def test_oracle_and_constant_expert(real):
    images, labels = real
    synthetic, synthetic_labels = blob_images(30, seed=7)  # other images, same class frequencies (1/3 each)
    names = ["low", "mid", "high"]
    oracle = SyntheticImageStudy(
        images, synthetic, labels, synthetic_labels, class_names=names, expert=MeanOracle(), **FAST
    ).run()
    assert oracle["expert_accuracy_real"] == 1.0
    assert oracle["expert_accuracy_synthetic"] == 1.0
    assert oracle["chi2_class_pvalue"] > 0.5
    assert oracle["kl_class"] == pytest.approx(0.0, abs=1e-9)

    constant = SyntheticImageStudy(
        images, synthetic, labels, synthetic_labels, class_names=names, expert=ConstantExpert(), **FAST
    ).run()
    assert constant["expert_accuracy_real"] == pytest.approx(1 / 3)
    assert constant["expert_accuracy_synthetic"] == pytest.approx(1 / 3)
    assert constant["chi2_class_pvalue"] < 0.01
    assert constant["kl_class"] > 1.0


def test_expert_without_synthetic_labels_and_class_count_from_logits(real):
    images, labels = real
    metrics = SyntheticImageStudy(images, images.clone(), real_labels=labels, expert=MeanOracle(), **FAST).run()
    assert metrics["expert_accuracy_real"] == 1.0
    assert "expert_accuracy_synthetic" not in metrics  # no labels for the synthetic images
    assert metrics["chi2_class_pvalue"] == pytest.approx(1.0)  # oracle predictions on a copy match the labels
    assert {"ssim_intra_real_0", "ssim_intra_real_1", "ssim_intra_real_2"} <= set(metrics)


def test_ssim_intra_identical_images_and_per_class_keys(real):
    templates, _ = blob_images(2, seed=3)
    identical = templates.repeat_interleave(5, dim=0)  # 5 copies of template 0, then 5 of template 1
    identical_labels = torch.tensor([0] * 5 + [1] * 5)
    synthetic, synthetic_labels = blob_images(12, seed=4)
    synthetic_labels = synthetic_labels % 2
    metrics = SyntheticImageStudy(
        identical, synthetic, identical_labels, synthetic_labels, class_names=["a", "b"], ssim_pairs=50
    ).run()
    assert metrics["ssim_intra_real_a"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["ssim_intra_real_b"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["ssim_intra_real"] == pytest.approx(1.0, abs=1e-6)
    per_class = [metrics["ssim_intra_synthetic_a"], metrics["ssim_intra_synthetic_b"]]
    assert all(v < 0.9 for v in per_class)
    assert metrics["ssim_intra_synthetic"] == pytest.approx(float(np.mean(per_class)))

    whole = SyntheticImageStudy(identical, synthetic, ssim_pairs=50).run()
    assert whole["ssim_intra_real"] < 0.9  # pairs across the two templates are not identical
    assert not any(k.startswith("ssim_intra_real_") for k in whole)


def test_class_with_one_image_gives_none(real):
    images, _ = blob_images(7, seed=5)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2])
    metrics = SyntheticImageStudy(images, images.clone(), labels, labels, ssim_pairs=20).run()
    assert metrics["ssim_intra_real_2"] is None and metrics["ssim_intra_synthetic_2"] is None
    assert metrics["ssim_intra_real"] == pytest.approx(
        np.mean([metrics["ssim_intra_real_0"], metrics["ssim_intra_real_1"]])
    )
    json.dumps(metrics, allow_nan=False)  # NaN became None


def test_reference_sets_cross_table(real, extractor):
    images, _ = real
    noise = torch.rand(20, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(9)) * 2 - 1
    refs = {"real_train": blob_images(40, seed=11)[0], "ood": noise}
    metrics = SyntheticImageStudy(
        images, images.clone(), feature_extractor=extractor, reference_sets=refs, **FAST
    ).run()
    expected = {
        "ssim_cross_synthetic_vs_real",
        "ssim_cross_synthetic_vs_real_train",
        "ssim_cross_synthetic_vs_ood",
        "ssim_cross_real_vs_real_train",
        "ssim_cross_real_vs_ood",
        "ssim_cross_real_train_vs_ood",
        "fid_real_train",
        "fid_ood",
    }
    assert expected <= set(metrics)
    assert metrics["ssim_cross_real_vs_real_train"] > 10 * abs(metrics["ssim_cross_real_vs_ood"])
    assert metrics["fid_real_train"] < metrics["fid_ood"]

    no_features = SyntheticImageStudy(images, images.clone(), reference_sets=refs, ssim_pairs=20).run()
    assert "ssim_cross_real_vs_ood" in no_features and "fid_ood" not in no_features


def test_files_written(real, extractor, tmp_path):
    images, labels = real
    synthetic, synthetic_labels = blob_images(30, seed=7)
    out = tmp_path / "nested" / "eval"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("not deleted")
    refs = {"real_train": blob_images(20, seed=11)[0]}
    metrics = SyntheticImageStudy(
        images,
        synthetic,
        labels,
        synthetic_labels,
        class_names=["low", "mid", "high"],
        feature_extractor=extractor,
        expert=MeanOracle(),
        reference_sets=refs,
        output_dir=out,
        extractor_name="tiny-conv",
        **FAST,
    ).run()
    expected_files = {
        "metrics.json",
        "report.md",
        "real_grid.png",
        "synthetic_grid.png",
        "intensity_histogram.png",
        "confusion_synthetic.png",
        "confusion_real.png",
        "keep.txt",
    }
    assert {p.name for p in out.iterdir()} == expected_files
    assert (out / "keep.txt").read_text() == "not deleted"

    text = (out / "metrics.json").read_text()
    assert json.loads(text) == metrics
    assert list(json.loads(text)) == sorted(metrics)

    report = (out / "report.md").read_text()
    assert "| metric | value | meaning |" in report
    for key in metrics:
        assert f"`{key}`" in report
    assert "tiny-conv" in report and "compare only within one extractor" in report
    assert "lower is better" in report and "higher is better" in report
    assert "α = 0.05" in report and "no significant difference" in report
    assert "## Cross-set similarity" in report and "| real | real_train |" in report
    for name in expected_files - {"metrics.json", "report.md", "keep.txt"}:
        assert f"]({name})" in report
        with Image.open(out / name) as im:
            im.load()
            assert min(im.size) > 0
    # one row of 8 tiles per class: 3 rows of 24 px with 2 px padding
    with Image.open(out / "real_grid.png") as im:
        assert im.size == (8 * SIZE + 9 * 2, 3 * SIZE + 4 * 2)
    with Image.open(out / "intensity_histogram.png") as im:
        assert im.size == (640, 400) and im.mode == "RGB"


def test_report_interprets_significant_difference(real, shifted, tmp_path):
    images, _ = real
    SyntheticImageStudy(images, shifted, output_dir=tmp_path, ssim_pairs=20).run()
    report = (tmp_path / "report.md").read_text()
    assert "< 0.05: the intensity distributions of real and synthetic images differ significantly" in report
    assert "No feature extractor was given" in report
    assert not (tmp_path / "confusion_real.png").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"real_images": torch.zeros(0, 1, SIZE, SIZE)}, "empty"),
        ({"synthetic_images": torch.zeros(1, 1, SIZE, SIZE)}, "at least 2"),
        ({"synthetic_images": torch.zeros(8, 3, SIZE, SIZE)}, "channels"),
        ({"synthetic_images": torch.zeros(8, 1, SIZE, SIZE + 2)}, "spatial size"),
        ({"real_images": torch.zeros(8, SIZE, SIZE)}, r"\(N, C, H, W\)"),
        ({"real_images": torch.zeros(8, 1, 8, 8), "synthetic_images": torch.zeros(8, 1, 8, 8)}, "SSIM"),
        ({"real_labels": [0, 1, 2]}, "3 labels"),
        ({"synthetic_labels": [0.5] * 8}, "integer"),
        ({"real_labels": [0, 1, 2, 3] * 2, "class_names": ["a", "b", "c"]}, "class_names has 3"),
        ({"class_names": ["a", "a"]}, "unique"),
        ({"expert": ConstantExpert(), "class_names": ["a", "b"]}, "expert has 3 classes"),
        ({"reference_sets": {"real": torch.zeros(4, 1, SIZE, SIZE)}}, "reserved"),
        ({"reference_sets": {"ref": torch.zeros(4, 1, SIZE, 16)}}, "spatial size"),
        ({"ssim_pairs": 0}, "ssim_pairs"),
        ({"histogram_bins": 1}, "histogram_bins"),
        ({"kid_subsets": 0}, "num_subsets"),
        ({"real_images": torch.full((8, 1, SIZE, SIZE), float("nan"))}, "NaN"),
    ],
)
def test_bad_inputs(change, message):
    kwargs = {"real_images": torch.zeros(8, 1, SIZE, SIZE), "synthetic_images": torch.zeros(8, 1, SIZE, SIZE)}
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        SyntheticImageStudy(**kwargs)


def test_bad_inputs_with_feature_extractor(extractor):
    few = torch.zeros(4, 1, SIZE, SIZE)
    with pytest.raises(ValueError, match="nearest_k=5"):
        SyntheticImageStudy(few, few.clone(), feature_extractor=extractor)
    many = torch.zeros(8, 1, SIZE, SIZE)
    with pytest.raises(ValueError, match="FID needs at least 2"):
        SyntheticImageStudy(many, many, feature_extractor=extractor, reference_sets={"one": many[:1]})
    with pytest.raises(ValueError, match="feature_extractor"):
        SyntheticImageStudy(many, many, feature_extractor="inception")


def test_expert_logits_must_match_class_names(real):
    images, labels = real
    evaluator = SyntheticImageStudy(
        images, images, labels, class_names=["a", "b", "c", "d"], expert=MeanOracle(), ssim_pairs=10
    )
    with pytest.raises(ValueError, match="3 logits but there are 4 classes"):
        evaluator.run()
