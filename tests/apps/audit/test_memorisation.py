"""MemorisationAudit: a known-answer test (planted copies among clean images), the data audit (duplicates across
splits, degenerate images), the report files, and auditing a folder or a trained model."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F

from medsyn_monai.apps.audit import MemorisationAudit, split_records
from medsyn_monai.apps.demo import create_demo
from medsyn_monai.data import ImageCollection, LoadMedicalImage, SliceDataset
from medsyn_monai.networks.nets import ExpertClassifier, FeatureExtractor


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> torch.Tensor:
    """400 chest X-ray demo phantoms (two classes) at 32 px in [-1, 1], in random order."""
    root = create_demo("cxr", tmp_path_factory.mktemp("cxr") / "demo", num_per_class=200)
    load = LoadMedicalImage()
    records = ImageCollection(root).data()
    x = torch.stack([F.interpolate(load(r["image"])[None], size=(32, 32), mode="area")[0] for r in records])
    x = x / 127.5 - 1
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))]


def _names(prefix, n):
    return [f"{prefix}{i:03d}" for i in range(n)]


def test_planted_copies_are_flagged_and_clean_images_are_not(phantoms, tmp_path):
    train, holdout, clean = phantoms[:200], phantoms[200:300], phantoms[300:]
    g = torch.Generator().manual_seed(1)
    src = train[:6]
    planted = torch.cat([src, src.flip(-1), torch.roll(src, 2, -1), torch.roll(src, -2, -2),
                         (src + 0.05 * torch.randn(src.shape, generator=g)).clamp(-1, 1), src * 0.7 + 0.1])  # fmt: skip
    planted_names = [f"planted_{kind}_{i}" for kind in ("copy", "flip", "shift_x", "shift_y", "noise", "scale")
                     for i in range(6)]  # fmt: skip
    torch.manual_seed(0)
    expert = ExpertClassifier("resnet18", in_channels=1, num_classes=2, image_size=32)  # features of some network
    audit = MemorisationAudit(tmp_path / "audit", feature_extractor=FeatureExtractor(expert))
    result = audit.run((torch.cat([clean, planted]), _names("clean", 100) + planted_names),
                       (train, _names("train", 200)), (holdout, _names("holdout", 100)))  # fmt: skip

    with open(tmp_path / "audit" / "flagged.csv", newline="") as f:
        flagged = list(csv.DictReader(f))
    names = {r["synthetic_path"] for r in flagged}
    assert set(planted_names) <= names  # every planted copy flagged
    by_pixel = {r["synthetic_path"]: r for r in flagged if "pixel" in r["flagged_by"]}
    for i in range(6):  # ... by the pixel measure, with the training image it was copied from
        assert by_pixel[f"planted_copy_{i}"]["train_path"] == f"train{i:03d}"
        assert by_pixel[f"planted_flip_{i}"]["train_path"] == f"train{i:03d}"
    clean_flagged = sum(n.startswith("clean") for n in names)
    assert clean_flagged <= 5  # <= 5 % of the clean images
    assert result["num_flagged"] == 36 + clean_flagged
    assert result["memorisation_rate"] == pytest.approx((36 + clean_flagged) / 136)
    assert set(result["thresholds"]) == {"pixel", "feature"}
    assert result["thresholds"]["pixel"] == pytest.approx(result["holdout_to_train"]["pixel"]["p1"])
    assert result["synthetic_to_train"]["pixel"]["p0"] == pytest.approx(0.0, abs=1e-9)
    saved = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert saved["memorisation_rate"] == result["memorisation_rate"] and saved["num_holdout"] == 100
    for name in ("closest_pairs.png", "distances_pixel.png", "distances_feature.png"):
        assert (tmp_path / "audit" / name).stat().st_size > 0


def test_data_audit_finds_leaks_and_degenerate_images(phantoms, tmp_path):
    train, holdout = phantoms[:60].clone(), phantoms[60:90].clone()
    holdout[0] = train[5]  # exact duplicate across splits
    holdout[1] = torch.roll(train[7], 1, -1)  # near duplicate
    train[10] = 0.25  # constant
    train[11] = torch.linspace(-1, 1, 32)[:, None]  # one row stretched
    result = MemorisationAudit(tmp_path, max_shift=1).run((phantoms[90:100], _names("s", 10)),
                                                          (train, _names("train", 60)),
                                                          (holdout, _names("holdout", 30)))  # fmt: skip
    data = result["data"]
    assert data["exact_duplicates_across_sets"] == 1
    assert data["exact_duplicates"][0] == [{"set": "train", "image": "train005"},
                                           {"set": "holdout", "image": "holdout000"}]  # fmt: skip
    assert {(d["image"], d["kind"]) for d in data["degenerate_images"]} == {
        ("train010", "constant"),
        ("train011", "stretched row"),
    }
    near = {(p["holdout"], p["train"]) for p in data["near_duplicate_pairs"]}
    assert {("holdout000", "train005"), ("holdout001", "train007")} <= near
    assert set(result["thresholds"]) == {"pixel"}  # no feature extractor: the pixel measure only


def test_audit_folder_records_and_errors(tmp_path):
    root = create_demo("cxr", tmp_path / "data", num_per_class=6)
    collection = ImageCollection(root, val_fraction=0.25, test_fraction=0.25)
    train_records = split_records(collection, None, "train")
    assert train_records == collection.data("train")
    assert len(split_records(collection, None, "val", "test")) == len(collection) - len(train_records)
    assert len(split_records(None, root)) == 12
    with pytest.raises(ValueError, match="no image to audit in the val/test split"):
        split_records(ImageCollection(root, val_fraction=0, test_fraction=0), None, "val", "test")
    load = LoadMedicalImage()

    def preprocess(record):
        image = F.interpolate(load(record["image"])[None], size=(16, 16), mode="area")[0]
        return {**record, "image": image / 127.5 - 1}

    train_set = SliceDataset(train_records, preprocess, progress=False)
    holdout = split_records(collection, None, "val", "test")
    # "synthetic" images that are the training images themselves: every one flagged
    result = MemorisationAudit(tmp_path / "audit", max_shift=1).run_on(train_set, holdout, train_records)
    assert result["num_synthetic"] == len(train_records) and result["memorisation_rate"] == 1.0
    with pytest.raises(ValueError, match="give synthetic_dir"):
        MemorisationAudit(tmp_path / "x").run_on(train_set, holdout)
    with pytest.raises(ValueError, match="flag_percentile must be in"):
        MemorisationAudit(tmp_path / "x", flag_percentile=101)
    with pytest.raises(ValueError, match="differ in shape"):
        MemorisationAudit(tmp_path / "x").run((torch.zeros(2, 1, 8, 8), ["a", "b"]), train_set, train_set)
