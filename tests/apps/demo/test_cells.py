"""Tests of :mod:`medsyn_monai.apps.demo.cells`: the synthetic cell-microscopy demo written as RGB PNG files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medsyn_monai.apps.demo import create_demo
from medsyn_monai.apps.demo.cells import CELLS_DEMO_CLASSES, CELLS_DEMO_VERSION, cells_phantom, create_cells_demo
from medsyn_monai.data import ImageCollection, LoadMedicalImage

KIND = "cells"
SMALL = {"num_per_class": 12, "size": 64, "seed": 5}


def _purple(img: np.ndarray) -> np.ndarray:
    """Dark purple (Giemsa) pixels: blue clearly above red, and dark (every channel < 170)."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (b > r + 8) & (np.maximum(np.maximum(r, g), b) < 170)


def test_structure_counts_and_metadata(small_demo: Path):
    assert sorted(p.name for p in small_demo.iterdir()) == ["README.md", "dataset.json", "parasitized", "uninfected"]
    for cls in CELLS_DEMO_CLASSES:
        names = sorted(p.name for p in (small_demo / cls).iterdir())
        assert names == [f"cell_{j:04d}.png" for j in range(SMALL["num_per_class"])]
    readme = (small_demo / "README.md").read_text()
    assert "SYNTHETIC DEMO DATA" in readme and "not patient data" in readme.lower()
    meta = json.loads((small_demo / "dataset.json").read_text())
    assert meta["synthetic"] is True and "SYNTHETIC DEMO DATA" in meta["description"]
    assert meta["classes"] == ["parasitized", "uninfected"] and meta["version"] == CELLS_DEMO_VERSION
    assert meta["generator"]["parameters"] == SMALL
    assert meta["class_counts"] == {"parasitized": 12, "uninfected": 12} and len(meta["images"]) == 24
    first = meta["images"][0]
    assert first == {"path": "parasitized/cell_0000.png", "class": "parasitized", "label": 0, "index": 0}
    assert not [p for p in small_demo.iterdir() if p.name.startswith(".tmp")]


def test_png_mode_size_and_generator_identity(small_demo: Path, read_png):
    meta = json.loads((small_demo / "dataset.json").read_text())
    for item in meta["images"]:
        img = read_png(small_demo / item["path"], "RGB")
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        # every file is exactly the phantom of default_rng([seed, 2 * j + label])
        expected = cells_phantom(np.random.default_rng([SMALL["seed"], item["index"]]), 64, item["label"] == 0)
        np.testing.assert_array_equal(img, expected)
    # reader convention: channel-first, spatial axes (x, y) = (column, row), so loaded[:, :, row] is image row `row`
    loaded = LoadMedicalImage()(small_demo / "uninfected" / "cell_0003.png")
    assert tuple(loaded.shape) == (3, 64, 64)
    np.testing.assert_array_equal(
        np.asarray(loaded[:, :, 10]), read_png(small_demo / "uninfected/cell_0003.png", "RGB")[10].T
    )


def test_determinism(tmp_path: Path, small_demo: Path, snapshot, read_png):
    again = create_cells_demo(tmp_path / "again", **SMALL)
    assert snapshot(again) == snapshot(small_demo)
    other = create_cells_demo(tmp_path / "other", **{**SMALL, "seed": 6})
    a, b = read_png(small_demo / "uninfected/cell_0000.png", "RGB"), read_png(other / "uninfected/cell_0000.png", "RGB")
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 10
    # the first images do not depend on the number of images per class
    fewer = create_cells_demo(tmp_path / "fewer", **{**SMALL, "num_per_class": 3})
    assert (fewer / "parasitized/cell_0002.png").read_bytes() == (small_demo / "parasitized/cell_0002.png").read_bytes()


@pytest.mark.parametrize("size", [32, 64, 96])
def test_black_background_and_single_cell(size: int):
    for index in range(40):
        img = cells_phantom(np.random.default_rng([1, index]), size, parasitized=index % 2 == 0)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        # a black frame: the cell never touches the crop border
        for edge in (img[0], img[-1], img[:, 0], img[:, -1]):
            assert not edge.any()
        cell = img.any(axis=-1)
        labels, count = ndimage.label(cell)
        assert count == 1  # one cell ...
        assert np.array_equal(ndimage.binary_fill_holes(cell), cell)  # ... with no black inside it
        assert 0.3 < cell.mean() < 0.65
        # cytoplasm is pinkish red: red above green and blue in the cell's median colour, paler centre than the rim
        r, g, b = np.median(img[cell], axis=0)
        assert r > b > g - 5 and r > 150
        core = ndimage.binary_erosion(cell, iterations=size // 5)
        rim = cell & ~ndimage.binary_erosion(cell, iterations=max(2, size // 16))
        assert img[core].astype(float).mean() > img[rim].astype(float).mean() + 5


def test_parasites_are_dark_purple_inside_the_cell(small_demo: Path, read_png):
    for j in range(SMALL["num_per_class"]):
        par = read_png(small_demo / f"parasitized/cell_{j:04d}.png", "RGB")
        unin = read_png(small_demo / f"uninfected/cell_{j:04d}.png", "RGB")
        inner = ndimage.binary_erosion(par.any(axis=-1), iterations=2)
        purple = _purple(par)
        assert purple.sum() >= 3, j
        assert not (purple & ~inner).any(), j  # inclusions lie inside the cell, away from the black background
        assert _purple(unin).sum() == 0, j
    # also over many phantoms and sizes: every parasitized cell has purple pixels, no uninfected cell has any
    for size in (48, 64):
        for index in range(100):
            assert _purple(cells_phantom(np.random.default_rng([2, index]), size, parasitized=True)).sum() >= 3
            assert _purple(cells_phantom(np.random.default_rng([2, index]), size, parasitized=False)).sum() == 0


def test_uninfected_cells_have_faint_artefacts_but_classes_share_the_cell():
    same = [
        (
            cells_phantom(np.random.default_rng([3, i]), 64, True),
            cells_phantom(np.random.default_rng([3, i]), 64, False),
        )
        for i in range(30)
    ]
    # the same generator gives the same cell outline with or without inclusions (up to faint anti-aliased edge pixels)
    assert all((p.any(-1) ^ u.any(-1)).sum() <= 3 for p, u in same)
    # many uninfected cells hold small local spots (clearly darker than their 7x7 neighbourhood), none of them purple
    spotted = 0
    for _, unin in same:
        cell = ndimage.binary_erosion(unin.any(-1), iterations=3)
        lum = unin.astype(float).mean(-1)
        dip = (ndimage.median_filter(lum, size=7) - lum)[cell]
        spotted += int(dip.max() > 15)
    assert spotted >= 5


def test_existing_folders(tmp_path: Path, small_demo: Path, check_existing_folders):
    check_existing_folders(create_cells_demo, small_demo, SMALL, tmp_path)
    # the same demo with a missing image is reported as incomplete, not silently accepted
    partial = create_cells_demo(tmp_path / "partial", num_per_class=2, size=32)
    (partial / "uninfected/cell_0001.png").unlink()
    with pytest.raises(ValueError, match="incomplete"):
        create_cells_demo(partial, num_per_class=2, size=32)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"num_per_class": 0}, "num_per_class"), ({"size": 16}, "size"), ({"seed": -1}, "seed"), ({"size": 64.0}, "size")],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str):
    with pytest.raises(ValueError, match=match):
        create_cells_demo(tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="rng"):
        cells_phantom(0, 64)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parasitized"):
        cells_phantom(np.random.default_rng(0), 64, parasitized="yes")  # type: ignore[arg-type]


def test_create_demo_dispatch_and_collection(tmp_path: Path):
    root = create_demo("cells", tmp_path / "cells", num_per_class=3, size=32)
    assert len(list(root.rglob("*.png"))) == 6
    col = ImageCollection(root, val_fraction=0.0, test_fraction=0.0)
    assert col.class_names == ["parasitized", "uninfected"] and len(col) == 6
    labels = {Path(r["image"]).parent.name: r["label"] for r in col.data()}
    assert labels == {"parasitized": 0, "uninfected": 1}


def test_default_collection_timing(tmp_path: Path):
    start = time.perf_counter()
    for index in range(400):
        cells_phantom(np.random.default_rng([0, index]), 64, parasitized=index % 2 == 0)
    elapsed = time.perf_counter() - start
    print(f"400 cell phantoms of 64 px drawn in {elapsed:.2f} s")
    assert elapsed < 3.0
    start = time.perf_counter()
    root = create_cells_demo(tmp_path / "cells")
    print(f"default cells demo (2 x 200 PNG of 64 px) written in {time.perf_counter() - start:.2f} s")
    assert len(list(root.rglob("*.png"))) == 400
