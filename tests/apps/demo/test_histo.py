"""Tests of :mod:`medsyn_monai.apps.demo.histo`: the synthetic histology-like texture demo (grey PNG tiles)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medsyn_monai.apps.demo import create_demo
from medsyn_monai.apps.demo.histo import HISTO_DEMO_CLASSES, HISTO_DEMO_VERSION, create_histo_demo, histo_phantom
from medsyn_monai.data import ImageCollection, LoadMedicalImage

KIND = "histo"
SMALL = {"num_per_class": 6, "size": 64, "seed": 2}


def test_structure_counts_and_metadata(small_demo: Path):
    assert sorted(p.name for p in small_demo.iterdir()) == sorted([*HISTO_DEMO_CLASSES, "README.md", "dataset.json"])
    assert list(HISTO_DEMO_CLASSES) == sorted(HISTO_DEMO_CLASSES) and len(HISTO_DEMO_CLASSES) == 8
    for cls in HISTO_DEMO_CLASSES:
        assert sorted(p.name for p in (small_demo / cls).iterdir()) == [f"tile_{j:04d}.png" for j in range(6)]
    readme = (small_demo / "README.md").read_text()
    assert "SYNTHETIC DEMO DATA" in readme and "not histology" in readme.lower() and "lymphocytes" in readme
    meta = json.loads((small_demo / "dataset.json").read_text())
    assert meta["synthetic"] is True and "not histology" in meta["description"]
    assert meta["classes"] == list(HISTO_DEMO_CLASSES) and meta["version"] == HISTO_DEMO_VERSION
    assert meta["generator"]["parameters"] == SMALL and meta["num_images"] == 48
    assert meta["images"][7] == {"path": "background/tile_0001.png", "class": "background", "label": 1, "index": 9}


def test_pixels_match_the_phantom_and_load_as_grey(small_demo: Path, read_png):
    meta = json.loads((small_demo / "dataset.json").read_text())
    for item in meta["images"]:
        img = read_png(small_demo / item["path"], "L")
        expected = histo_phantom(np.random.default_rng([SMALL["seed"], item["index"]]), item["class"], 64)
        assert img.shape == (64, 64) and img.dtype == np.uint8
        np.testing.assert_array_equal(img, expected)
    loaded = LoadMedicalImage()(small_demo / "muscle" / "tile_0002.png")
    assert tuple(loaded.shape) == (1, 64, 64)  # channel-first, (x, y) = (column, row)
    np.testing.assert_array_equal(np.asarray(loaded[0, :, 7]), read_png(small_demo / "muscle/tile_0002.png", "L")[7])
    collection = ImageCollection(small_demo, val_fraction=0.0, test_fraction=0.0)
    assert collection.class_names == list(HISTO_DEMO_CLASSES) and len(collection.data("train")) == 48


def test_determinism_and_idempotence(tmp_path: Path, small_demo: Path, snapshot, read_png, check_existing_folders):
    again = create_histo_demo(tmp_path / "again", **SMALL)
    assert snapshot(again) == snapshot(small_demo)
    check_existing_folders(create_histo_demo, small_demo, SMALL, tmp_path)  # the same demo: nothing rewritten
    other = create_histo_demo(tmp_path / "other", **{**SMALL, "seed": 3, "num_per_class": 2})
    a, b = read_png(small_demo / "tumour/tile_0000.png", "L"), read_png(other / "tumour/tile_0000.png", "L")
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5
    fewer = create_histo_demo(tmp_path / "fewer", **{**SMALL, "num_per_class": 2})
    assert (fewer / "adipose/tile_0001.png").read_bytes() == (small_demo / "adipose/tile_0001.png").read_bytes()
    via_dispatch = create_demo("histo", tmp_path / "dispatch", num_per_class=1, size=32)
    assert len(list(via_dispatch.rglob("*.png"))) == 8


def _stats(tissue: str, n: int = 12) -> dict[str, float]:
    tiles = np.stack([histo_phantom(np.random.default_rng([0, 8 * j]), tissue) for j in range(n)]).astype(float)
    dark = (tiles < 70).mean()
    bright = (tiles > 215).mean()
    grad = np.abs(np.diff(tiles, axis=2)).mean()
    return {"mean": tiles.mean(), "std": tiles.std(axis=(1, 2)).mean(), "dark": dark, "bright": bright, "grad": grad}


def test_classes_have_their_documented_textures():
    s = {t: _stats(t) for t in HISTO_DEMO_CLASSES}
    # background: the brightest and flattest tiles
    assert s["background"]["mean"] == max(v["mean"] for v in s.values())
    assert s["background"]["std"] == min(v["std"] for v in s.values()) and s["background"]["std"] < 5
    # adipose: mostly bright fat with thin membranes, hardly any dark pixels
    assert s["adipose"]["bright"] > 0.7 and s["adipose"]["dark"] < 0.01
    # lymphocytes: the largest fraction of very dark pixels; tumour the next (big dark nuclei)
    ranked = sorted(HISTO_DEMO_CLASSES, key=lambda t: s[t]["dark"], reverse=True)
    assert ranked[:2] == ["lymphocytes", "tumour"] and s["lymphocytes"]["dark"] > 0.2
    # mucus: pale and low contrast, but not blank
    assert (
        200 < s["mucus"]["mean"] < s["background"]["mean"]
        and s["background"]["std"] < s["mucus"]["std"] < s["debris"]["std"]
    )
    # muscle: oriented fibres give strong local gradients at a mid-grey level
    assert 100 < s["muscle"]["mean"] < 170 and s["muscle"]["grad"] > s["debris"]["grad"]
    # normal mucosa: bright lumina and dark basal nuclei in the same tile
    assert s["normal_mucosa"]["bright"] > 0.05 and s["normal_mucosa"]["dark"] > 0.01
    with pytest.raises(ValueError, match="unknown tissue"):
        histo_phantom(np.random.default_rng(0), "bone")
    with pytest.raises(ValueError, match="size"):
        histo_phantom(np.random.default_rng(0), "mucus", size=16)
