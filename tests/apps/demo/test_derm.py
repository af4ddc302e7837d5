"""Tests of :mod:`medsyn_monai.apps.demo.derm`: the synthetic dermoscopy-like demo (lesion classes + instance)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medsyn_monai.apps.demo import create_demo, prepare_demo
from medsyn_monai.apps.demo.derm import (
    DERM_DEMO_CLASSES,
    DERM_DEMO_INSTANCE,
    DERM_DEMO_VERSION,
    create_derm_demo,
    derm_phantom,
)
from medsyn_monai.data import ImageCollection, LoadMedicalImage

KIND = "derm"
SMALL = {"num_per_class": 6, "num_instance": 3, "size": 64, "seed": 3}


def _lesion_stats(kind: str, n: int = 12) -> dict[str, np.ndarray]:
    """Per image: lesion area (dark or bluish pixels vs the skin), colour spread inside it, median RGB inside it."""
    areas, spreads, means, solidity = [], [], [], []
    for j in range(n):
        img = derm_phantom(np.random.default_rng([11, j]), 64, kind=kind).astype(np.float32) / 255
        # the skin is bright and red-dominant; every lesion is darker or bluer than the skin at the image centre rows
        skin = np.median(img[:6].reshape(-1, 3), axis=0)
        lesion = (img.sum(-1) < 0.8 * skin.sum()) | (img[..., 2] > img[..., 0] + 0.02)
        lesion[:4], lesion[-4:], lesion[:, :4], lesion[:, -4:] = False, False, False, False  # vignette
        parts, count = ndimage.label(ndimage.binary_opening(lesion, iterations=1))  # opening removes thin hairs
        lesion = parts == 1 + np.argmax(ndimage.sum(lesion, parts, range(1, count + 1)))  # largest component
        areas.append(lesion.mean())
        pixels = img[lesion]
        spreads.append(pixels.std(axis=0).mean())
        means.append(np.median(pixels, axis=0))
        ys, xs = np.nonzero(lesion)
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        solidity.append(lesion.sum() / box)
    return {"area": np.array(areas), "spread": np.array(spreads), "mean": np.array(means),
            "fill": np.array(solidity)}  # fmt: skip


def test_phantom_kinds_differ_as_documented():
    mel, nev, blue = _lesion_stats("melanoma"), _lesion_stats("nevus"), _lesion_stats("blue_nevus")
    # melanomas are larger and multicoloured, nevi uniform brown, blue naevi small and bluish
    assert np.median(mel["area"]) > np.median(nev["area"]) > np.median(blue["area"])
    assert np.median(mel["spread"]) > 1.5 * np.median(nev["spread"])
    assert np.median(mel["spread"]) > 1.5 * np.median(blue["spread"])
    r, g, b = nev["mean"].T
    assert np.all(r > g) and np.all(g > b)  # brown
    r, g, b = blue["mean"].T
    assert np.all(b > r + 0.05) and np.all(b > g)  # blue-grey
    # round lesions fill ~pi/4 of their bounding box; irregular melanomas less
    assert np.median(nev["fill"]) > 0.72 and np.median(blue["fill"]) > 0.72
    assert np.median(mel["fill"]) < np.median(nev["fill"])


def test_phantom_determinism_and_arguments():
    a = derm_phantom(np.random.default_rng([0, 1]), 48, kind="melanoma")
    assert a.shape == (48, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, derm_phantom(np.random.default_rng([0, 1]), 48, kind="melanoma"))
    assert not np.array_equal(a, derm_phantom(np.random.default_rng([0, 2]), 48, kind="melanoma"))
    with pytest.raises(ValueError, match="kind must be one of"):
        derm_phantom(np.random.default_rng(0), 64, kind="wart")
    with pytest.raises(ValueError, match="size must be an integer >= 32"):
        derm_phantom(np.random.default_rng(0), 16)
    with pytest.raises(ValueError, match="rng must be"):
        derm_phantom(0, 64)  # type: ignore[arg-type]


def test_structure_counts_and_metadata(small_demo: Path, read_png):
    assert sorted(p.name for p in small_demo.iterdir()) == ["README.md", "dataset.json", "instance", "lesions"]
    for cls in DERM_DEMO_CLASSES:
        names = sorted(p.name for p in (small_demo / "lesions" / cls).iterdir())
        assert names == [f"derm_{j:04d}.png" for j in range(6)]
    assert sorted(p.name for p in (small_demo / "instance").iterdir()) == [
        f"{DERM_DEMO_INSTANCE}_{j:04d}.png" for j in range(3)
    ]
    readme = (small_demo / "README.md").read_text()
    assert "SYNTHETIC DEMO DATA" in readme and "not patient data" in readme.lower()
    meta = json.loads((small_demo / "dataset.json").read_text())
    assert meta["synthetic"] is True and meta["version"] == DERM_DEMO_VERSION
    assert meta["classes"] == ["melanoma", "nevus"] and meta["instance"] == "blue_nevus"
    assert meta["generator"]["parameters"] == SMALL and meta["num_images"] == 15
    assert meta["images"][0] == {"path": "lesions/melanoma/derm_0000.png", "class": "melanoma", "index": 0, "label": 0}
    # image j of kind k comes from default_rng([seed, 3 j + k])
    first_blue = read_png(small_demo / "instance" / "blue_nevus_0001.png", "RGB")
    assert np.array_equal(first_blue, derm_phantom(np.random.default_rng([3, 3 * 1 + 2]), 64, kind="blue_nevus"))


def test_collection_reads_lesions_and_instance(small_demo: Path):
    col = ImageCollection(small_demo / "lesions", val_fraction=0.0, test_fraction=0.0)
    assert str(col.layout) == "class_folders" and col.class_names == ["melanoma", "nevus"] and len(col) == 12
    inst = ImageCollection(small_demo / "instance", val_fraction=0.0, test_fraction=0.0)
    assert str(inst.layout) == "loose_files" and not inst.labelled and len(inst) == 3
    image = LoadMedicalImage()(str(small_demo / "instance" / "blue_nevus_0000.png"))
    assert tuple(image.shape) == (3, 64, 64)


def test_idempotent_and_create_demo_dispatch(small_demo: Path, tmp_path: Path, snapshot, check_existing_folders):
    check_existing_folders(create_derm_demo, small_demo, SMALL, tmp_path)  # identical demo: untouched
    other = create_demo("derm", tmp_path / "d", **SMALL)
    assert snapshot(other) == snapshot(small_demo)


def test_prepare_demo(tmp_path: Path):
    demo = tmp_path / "derm_demo"
    elsewhere = tmp_path / "real"
    assert prepare_demo("derm", elsewhere, demo) == str(elsewhere) and not demo.exists()
    out = prepare_demo("derm", demo / "lesions", demo, num_per_class=2, num_instance=1, size=32)
    assert out == str(demo / "lesions") and len(list((demo / "lesions").rglob("*.png"))) == 4
    assert len(list((demo / "instance").glob("*.png"))) == 1


def test_default_demo_is_fast(tmp_path: Path):
    start = time.perf_counter()
    root = create_derm_demo(tmp_path / "full")
    elapsed = time.perf_counter() - start
    assert len(list((root / "lesions").rglob("*.png"))) == 120 and len(list((root / "instance").glob("*.png"))) == 5
    assert elapsed < 10.0, f"the default derm demo took {elapsed:.1f} s"
