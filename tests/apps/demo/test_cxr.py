"""Tests of :mod:`medsyn_monai.apps.demo.cxr`: the synthetic chest-radiograph phantom written as grey PNG files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from medsyn_monai.apps.demo import create_demo, prepare_demo
from medsyn_monai.apps.demo.cxr import CXR_DEMO_CLASSES, CXR_DEMO_VERSION, create_cxr_demo, cxr_phantom
from medsyn_monai.data import ImageCollection, LoadMedicalImage

KIND = "cxr"
SMALL = {"num_per_class": 10, "size": 64, "seed": 3}


def test_structure_counts_and_metadata(small_demo: Path):
    assert sorted(p.name for p in small_demo.iterdir()) == ["README.md", "dataset.json", "normal", "pneumonia"]
    for cls in CXR_DEMO_CLASSES:
        assert sorted(p.name for p in (small_demo / cls).iterdir()) == [f"cxr_{j:04d}.png" for j in range(10)]
    readme = (small_demo / "README.md").read_text()
    assert "SYNTHETIC DEMO DATA" in readme and "phantom" in readme and "not patient data" in readme.lower()
    meta = json.loads((small_demo / "dataset.json").read_text())
    assert meta["synthetic"] is True and meta["classes"] == ["normal", "pneumonia"]
    assert meta["version"] == CXR_DEMO_VERSION and meta["generator"]["parameters"] == SMALL
    assert meta["class_counts"] == {"normal": 10, "pneumonia": 10} and len(meta["images"]) == 20
    assert meta["images"][1] == {"path": "normal/cxr_0001.png", "class": "normal", "label": 0, "index": 2}


def test_png_files_are_the_phantoms_and_load_channel_first(small_demo: Path, read_png):
    meta = json.loads((small_demo / "dataset.json").read_text())
    for item in meta["images"]:
        img = read_png(small_demo / item["path"], "L")
        assert img.shape == (64, 64) and img.dtype == np.uint8
        expected = cxr_phantom(np.random.default_rng([SMALL["seed"], item["index"]]), 64, item["label"] == 1)
        np.testing.assert_array_equal(img, expected)
    # reader convention: channel first, spatial axes (x, y) = (column, row)
    loaded = LoadMedicalImage()(small_demo / "pneumonia" / "cxr_0004.png")
    assert tuple(loaded.shape) == (1, 64, 64)
    np.testing.assert_array_equal(
        np.asarray(loaded[0, :, 20]), read_png(small_demo / "pneumonia/cxr_0004.png", "L")[20]
    )
    collection = ImageCollection(small_demo, val_fraction=0.2, test_fraction=0.2)
    assert collection.class_names == ["normal", "pneumonia"] and len(collection) == 20


def test_anatomy_brightness_order():
    """Dark background < dark lungs < bright mediastinum / spine, on average over many phantoms."""
    imgs = np.stack([cxr_phantom(np.random.default_rng([1, i]), 64, False) for i in range(20)]).astype(float)
    background = imgs[:, :3, :3].mean()
    right_lung = imgs[:, 24:34, 12:18].mean()  # image left = the patient's right lung
    left_lung = imgs[:, 20:30, 46:52].mean()
    mediastinum = imgs[:, 14:26, 30:34].mean()
    abdomen = imgs[:, 58:62, 24:40].mean()
    assert background < 40
    assert background < right_lung < mediastinum - 50 and left_lung < mediastinum - 50
    assert abdomen > right_lung + 50


def test_pneumonia_adds_opacities_in_the_lungs():
    """Patchy opacities make the lung fields heterogeneous: a one-feature threshold separates the classes."""

    def lung_heterogeneity(img: np.ndarray) -> float:
        lungs = np.concatenate([img[20:42, 13:24].ravel(), img[18:36, 42:50].ravel()]).astype(float)
        return float(lungs.std())

    normal = [lung_heterogeneity(cxr_phantom(np.random.default_rng([2, i]), 64, False)) for i in range(60)]
    pneumonia = [lung_heterogeneity(cxr_phantom(np.random.default_rng([2, i]), 64, True)) for i in range(60)]
    assert np.mean(pneumonia) > np.mean(normal) + 5
    threshold = np.median(normal + pneumonia)
    accuracy = (np.sum(np.array(normal) < threshold) + np.sum(np.array(pneumonia) >= threshold)) / 120
    assert accuracy > 0.75


def test_determinism_and_independence_of_count(
    tmp_path: Path, small_demo: Path, snapshot, read_png, check_existing_folders
):
    again = create_cxr_demo(tmp_path / "again", **SMALL)
    assert snapshot(again) == snapshot(small_demo)
    fewer = create_cxr_demo(tmp_path / "fewer", **{**SMALL, "num_per_class": 2})
    np.testing.assert_array_equal(
        read_png(fewer / "normal/cxr_0001.png", "L"), read_png(small_demo / "normal/cxr_0001.png", "L")
    )
    other = create_cxr_demo(tmp_path / "other", **{**SMALL, "seed": 4})
    a, b = read_png(small_demo / "normal/cxr_0000.png", "L"), read_png(other / "normal/cxr_0000.png", "L")
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 3
    # an existing identical demo is left untouched; a different one in the same folder, or a foreign folder, is refused
    check_existing_folders(create_cxr_demo, again, SMALL, tmp_path)


def test_default_demo_written_by_prepare_demo_within_budget(tmp_path: Path):
    """``prepare_demo("cxr", ...)`` writes the default demo into an absent dataset_dir, in < 10 s."""
    start = time.perf_counter()
    collection = ImageCollection(prepare_demo("cxr", tmp_path / "auto", tmp_path / "auto"))
    elapsed = time.perf_counter() - start
    assert elapsed < 10.0, f"default cxr demo took {elapsed:.1f} s"
    assert collection.class_names == ["normal", "pneumonia"] and len(collection) == 400
    meta = json.loads((tmp_path / "auto" / "dataset.json").read_text())
    assert meta["generator"]["parameters"] == {"num_per_class": 200, "size": 64, "seed": 0}
    assert create_demo("cxr", tmp_path / "auto") == tmp_path / "auto"  # the dispatcher knows the kind (no rewrite)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"num_per_class": 0}, "num_per_class"), ({"size": 16}, "size"), ({"seed": -1}, "seed"), ({"size": 3.5}, "size")],
)
def test_bad_arguments(tmp_path: Path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_cxr_demo(tmp_path / "bad", **kwargs)


def test_phantom_bad_arguments():
    with pytest.raises(ValueError, match="rng"):
        cxr_phantom(0, 64)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pneumonia"):
        cxr_phantom(np.random.default_rng(0), 64, pneumonia="yes")  # type: ignore[arg-type]
    assert cxr_phantom(np.random.default_rng(0), 28).shape == (28, 28)
