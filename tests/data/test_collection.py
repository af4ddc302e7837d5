"""ImageCollection layouts and every kind of bad input (raise vs skip + report)."""

from __future__ import annotations

import copy
import csv
import re
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medsyn_monai.data import DataValidationError, ImageCollection, LoadMedicalImage, LoadMedicalImaged

CT_SMALL = get_testdata_file("CT_small.dcm")


def make_series(folder: Path, n: int = 3, value: int = 100, uid: str | None = None, prefix: str = "IM") -> list[Path]:
    """Write ``n`` 32x32 CT slices of one series (positions reversed relative to file names)."""
    template = pydicom.dcmread(CT_SMALL)
    folder.mkdir(parents=True, exist_ok=True)
    uid = uid or generate_uid()
    paths = []
    for k in range(n):
        ds = copy.deepcopy(template)
        ds.Rows = ds.Columns = 32
        ds.PixelData = np.full((32, 32), value + k, np.int16).tobytes()
        ds.ImagePositionPatient = [0.0, 0.0, float(-2 * k)]
        ds.InstanceNumber = k + 1
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        path = folder / f"{prefix}_{k:03d}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


def make_pngs(folder: Path, n: int, value: int = 0, size: int = 8) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img_{i:03d}.png"
        Image.fromarray(np.full((size, size), (value + i) % 256, np.uint8)).save(path)
        paths.append(path)
    return paths


def read_report(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_split_by_case(records: list[dict]) -> None:
    seen: dict[str, str] = {}
    for r in records:
        assert r["split"] in ("train", "val", "test")
        assert seen.setdefault(r["case_id"], r["split"]) == r["split"], f"case {r['case_id']} in two splits"


# ----------------------------------------------------------------------------------------------- layouts
def test_class_folders_pngs(tmp_path):
    make_pngs(tmp_path / "normal", 10, value=0)
    make_pngs(tmp_path / "pneumonia", 10, value=100)
    (tmp_path / "README.md").write_text("a dataset")
    (tmp_path / "dataset.json").write_text("{}")
    col = ImageCollection(tmp_path, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert col.layout == "class_folders" and col.class_names == ["normal", "pneumonia"] and col.num_classes == 2
    assert col.labelled and len(col) == 20
    for r in col.records:
        assert r["class_name"] == Path(r["image"]).parent.name and r["label"] == col.class_names.index(r["class_name"])
        assert r["source_format"] == "png" and r["case_id"] == f"{r['class_name']}/{Path(r['image']).name}"
    counts = Counter((r["label"], r["split"]) for r in col.records)
    assert all(counts[(lab, s)] == n for lab in (0, 1) for s, n in (("train", 6), ("val", 2), ("test", 2)))
    again = ImageCollection(tmp_path, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert again.records == col.records
    assert [r["case_id"] for r in col.data("val")] == [r["case_id"] for r in col.records if r["split"] == "val"]
    col.data("train")[0]["label"] = 99  # copies
    assert all(r["label"] != 99 for r in col.records)
    assert "class_folders" in repr(col) and "train=12" in repr(col)
    # class_names given: their order defines the labels
    named = ImageCollection(tmp_path, class_names=["pneumonia", "normal"])
    assert all(r["label"] == (0 if r["class_name"] == "pneumonia" else 1) for r in named.records)


def make_tiffs(root: Path) -> dict[str, np.ndarray]:
    """Class folders of TIFF files: ``grey/`` 8-bit and 16-bit grey and a 16-bit 3-page stack, ``rgb/`` two RGB."""
    rng = np.random.default_rng(3)
    pixels = {
        "grey/g8.tif": rng.integers(0, 256, (8, 10), dtype=np.uint8),
        "grey/g16.TIFF": rng.integers(0, 65536, (8, 10), dtype=np.uint16),
        "grey/stack.tiff": rng.integers(0, 65536, (3, 8, 10), dtype=np.uint16),
        "rgb/c1.tif": rng.integers(0, 256, (8, 10, 3), dtype=np.uint8),
        "rgb/c2.tif": rng.integers(0, 256, (8, 10, 3), dtype=np.uint8),
    }
    for name, arr in pixels.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(root / name, arr, photometric="rgb" if arr.shape[-1] == 3 else "minisblack")
    return pixels


def test_class_folders_tiff(tmp_path):
    pixels = make_tiffs(tmp_path / "data")
    col = ImageCollection(tmp_path / "data", val_fraction=0.0, test_fraction=0.0)
    assert col.layout == "class_folders" and col.class_names == ["grey", "rgb"] and len(col) == 5
    assert {r["case_id"] for r in col.records} == set(pixels) and all(r["source_format"] == "tiff" for r in col.records)
    load = LoadMedicalImaged("image")
    for record in col.records:
        arr = pixels[record["case_id"]]
        img = load(record)["image"]
        if arr.ndim == 2:  # (rows, columns) -> (1, columns, rows)
            expected = arr.T[None]
        elif record["class_name"] == "rgb":  # (rows, columns, 3) -> (3, columns, rows)
            expected = np.transpose(arr, (2, 1, 0))
        else:  # pages (z, rows, columns) -> (1, columns, rows, z)
            expected = np.transpose(arr, (2, 1, 0))[None]
        np.testing.assert_array_equal(img.numpy(), expected.astype(np.float32))
        assert record["label"] == col.class_names.index(record["class_name"])


def test_corrupt_tiff_named_and_skipped(tmp_path):
    make_tiffs(tmp_path / "data")
    good = (tmp_path / "data" / "rgb" / "c1.tif").read_bytes()
    cut = tmp_path / "data" / "rgb" / "cut.tif"
    cut.write_bytes(good[: len(good) - 40])  # pixel data truncated, header intact
    fake = tmp_path / "data" / "grey" / "fake.tif"
    fake.write_bytes(b"GIF89a not a tiff")
    with pytest.raises(DataValidationError) as info:
        ImageCollection(tmp_path / "data")
    msg = str(info.value)
    assert msg.startswith("2 bad files in dataset_dir")
    assert f"  {cut}: truncated: pixel data ends at byte {len(good)}, the file has {len(good) - 40} bytes" in msg
    assert f"  {fake}: not a TIFF file" in msg
    report = tmp_path / "out" / "bad.csv"
    col = ImageCollection(tmp_path / "data", skip_bad_files=True, report_path=report)
    assert len(col) == 5 and {str(cut), str(fake)}.isdisjoint(r["image"] for r in col.records)
    # the report holds no absolute input path: paths relative to the data set's folder
    assert {r["path"] for r in read_report(report)} == {"rgb/cut.tif", "grey/fake.tif"}


def test_class_folders_with_dicom_series(tmp_path):
    for c, v in (("healthy", 100), ("tumour", 500)):
        for s in range(3):
            make_series(tmp_path / c / f"patient{s}", n=4, value=v + 10 * s)
    # a class folder whose own files mix two series -> one record per series (list of files)
    make_series(tmp_path / "tumour", n=2, value=900, prefix="A")
    make_series(tmp_path / "tumour", n=3, value=950, prefix="B")
    col = ImageCollection(tmp_path, val_fraction=0.2, test_fraction=0.2)
    assert col.layout == "class_folders" and col.class_names == ["healthy", "tumour"]
    assert len(col) == 8
    folders = [r for r in col.records if isinstance(r["image"], str)]
    lists = [r for r in col.records if isinstance(r["image"], list)]
    assert len(folders) == 6 and all(Path(r["image"]).is_dir() for r in folders)
    assert all(r["source_format"] == "dicom_series" for r in col.records)
    assert sorted(len(r["image"]) for r in lists) == [2, 3] and all(r["class_name"] == "tumour" for r in lists)
    # the series are named by their order in the folder, never by their SeriesInstanceUID (case ids reach reports)
    assert sorted(r["case_id"] for r in lists) == ["tumour#series0", "tumour#series1"]
    assert_split_by_case(col.records)
    load = LoadMedicalImage()
    three = next(r for r in lists if len(r["image"]) == 3)
    img = load(three["image"])
    assert tuple(img.shape) == (1, 32, 32, 3)
    # position order (z = 0, -2, -4 for values 950, 951, 952): ascending z -> 952, 951, 950
    assert [img[0, 0, 0, k].item() + 1024 for k in range(3)] == [952, 951, 950]
    vol = load(folders[0]["image"])
    assert tuple(vol.shape) == (1, 32, 32, 4)


def test_csv_manifest_with_split_and_relative_paths(tmp_path):
    pngs = make_pngs(tmp_path / "images", 8)
    make_series(tmp_path / "ct" / "s1", n=3)
    rows = [["path", "label", "split", "case_id"]]
    for i, p in enumerate(pngs):
        rows.append([f"images/{p.name}", ["cat", "dog"][i % 2], "test" if i == 0 else "", f"pat{i // 2}"])
    rows.append(["ct/s1", "dog", "val", ""])
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    col = ImageCollection(tmp_path, val_fraction=0.25, test_fraction=0.0)
    assert col.layout == "csv" and col.class_names == ["cat", "dog"] and len(col) == 9
    by_image = {r["image"]: r for r in col.records}
    assert by_image[str(pngs[0])]["split"] == "test" and by_image[str(pngs[1])]["split"] == "test"  # same case pat0
    series = by_image[str(tmp_path / "ct" / "s1")]
    assert series["split"] == "val" and series["case_id"] == "ct/s1" and series["source_format"] == "dicom_series"
    assert by_image[str(pngs[3])]["label"] == 1 and by_image[str(pngs[3])]["class_name"] == "dog"
    assert_split_by_case(col.records)
    # integer labels; root given as the CSV file itself
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "label"]] + [[f"images/{p.name}", i % 3] for i, p in enumerate(pngs)])
    col = ImageCollection(tmp_path / "manifest.csv")
    assert col.class_names == ["0", "1", "2"] and [r["label"] for r in col.records] == [i % 3 for i in range(8)]


def test_csv_mixed_labelled_unlabelled_is_value_error(tmp_path):
    pngs = make_pngs(tmp_path / "i", 2)
    (tmp_path / "m.csv").write_text(f"path,label\ni/{pngs[0].name},1\ni/{pngs[1].name},\n")
    with pytest.raises(ValueError, match="mixes labelled"):
        ImageCollection(tmp_path)


def test_series_folders_and_loose_files(tmp_path):
    root = tmp_path / "series"
    for s in range(4):
        make_series(root / f"scan{s}", n=3)
    col = ImageCollection(root, val_fraction=0.25, test_fraction=0.25)
    assert col.layout == "series_folders" and col.class_names is None and not col.labelled
    assert len(col) == 4 and all("label" not in r and Path(r["image"]).is_dir() for r in col.records)
    assert Counter(r["split"] for r in col.records) == Counter({"train": 2, "val": 1, "test": 1})

    loose = tmp_path / "loose"
    make_pngs(loose, 3)
    make_series(loose, n=4, prefix="S1")
    make_series(loose, n=2, prefix="S2")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(loose / "photo.jpg")
    col = ImageCollection(loose)
    assert col.layout == "loose_files" and len(col) == 6
    formats = Counter(r["source_format"] for r in col.records)
    assert formats == Counter({"png": 3, "dicom_series": 2, "jpeg": 1})
    assert sorted(len(r["image"]) for r in col.records if isinstance(r["image"], list)) == [2, 4]


def _write_npz(path: Path, n=(12, 4, 5), labels_2d=True, max_label=2) -> dict:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        arrays[f"{split}_images"] = rng.integers(0, 256, (count, 6, 5), dtype=np.uint8)
        lab = np.arange(count) % (max_label + 1)
        arrays[f"{split}_labels"] = lab[:, None] if labels_2d else lab
    np.savez(path, **arrays)
    return arrays


def test_npz_medmnist_like(tmp_path):
    arrays = _write_npz(tmp_path / "toymnist.npz")
    (tmp_path / "README.md").write_text("x")
    col = ImageCollection(tmp_path)
    assert col.layout == "npz" and col.class_names == ["0", "1", "2"] and len(col) == 21
    assert Counter(r["split"] for r in col.records) == Counter({"train": 12, "val": 4, "test": 5})
    rec = next(r for r in col.records if r["case_id"] == "val_3")
    assert rec["split"] == "val" and rec["label"] == 0 and rec["class_name"] == "0" and rec["source_format"] == "npz"
    np.testing.assert_array_equal(rec["image"], arrays["val_images"][3])
    img = LoadMedicalImage()(rec["image"], name=rec["case_id"])
    assert tuple(img.shape) == (1, 5, 6) and img[0, 4, 2].item() == arrays["val_images"][3][2, 4]
    direct = ImageCollection(tmp_path / "toymnist.npz", class_names=["a", "b", "c"])
    assert direct.class_names == ["a", "b", "c"] and direct.records[1]["class_name"] == "b"


def test_shared_pneumoniamnist(shared_data):
    path = shared_data / "pneumoniamnist" / "pneumoniamnist.npz"
    if not path.is_file():
        pytest.skip(f"PneumoniaMNIST not found at {path} (../shared/data is absent)")
    col = ImageCollection(path.parent)
    assert col.layout == "npz" and col.class_names == ["0", "1"]
    counts = Counter((r["split"], r["label"]) for r in col.records)
    assert counts == Counter(
        {("train", 0): 1214, ("train", 1): 3494, ("val", 0): 135, ("val", 1): 389, ("test", 0): 234, ("test", 1): 390}
    )
    assert col.records[0]["image"].shape == (28, 28)


def test_shared_mednist_subset(tmp_path, shared_data):
    archive = shared_data / "mednist64" / "MedNIST_64x64_500.zip"
    if not archive.is_file():
        pytest.skip(f"MedNIST archive not found at {archive} (../shared/data is absent)")
    per_class: Counter = Counter()
    with zipfile.ZipFile(archive) as z:
        for name in z.namelist():
            parts = Path(name).parts
            if name.lower().endswith(".jpeg") or name.lower().endswith(".jpg"):
                cls = parts[-2]
                if per_class[cls] < 5:
                    per_class[cls] += 1
                    (tmp_path / cls).mkdir(exist_ok=True)
                    (tmp_path / cls / parts[-1]).write_bytes(z.read(name))
    col = ImageCollection(tmp_path)
    assert col.layout == "class_folders" and col.num_classes == 6 and len(col) == 30
    img = LoadMedicalImage()(col.records[0]["image"])
    assert tuple(img.shape) == (1, 64, 64) and img.meta["bit_depth"] == 8 and img.meta["source_format"] == "jpeg"


# ----------------------------------------------------------------------------------------------- bad inputs
def _bad_class_dataset(root: Path) -> dict[str, Path]:
    """Class folders with one of each bad file next to good ones."""
    make_pngs(root / "a", 4)
    good = make_series(root / "b" / "good_series", n=3)
    bad = make_series(root / "b" / "bad_series", n=3)
    raw = Path(CT_SMALL).read_bytes()
    truncated = root / "b" / "truncated.dcm"
    truncated.write_bytes(raw[: len(raw) // 2])
    fake = root / "a" / "fake.dcm"
    fake.write_text("hello")
    ds = pydicom.dcmread(bad[1])
    del ds.PixelData
    ds.save_as(bad[1])
    (root / "c").mkdir()
    return {"truncated": truncated, "fake": fake, "nopixel": bad[1], "empty": root / "c", "good": good[0]}


def test_bad_inputs_raise_with_every_problem(tmp_path):
    bad = _bad_class_dataset(tmp_path / "data")
    with pytest.raises(DataValidationError) as info:
        ImageCollection(tmp_path / "data", report_path=tmp_path / "out" / "bad.csv")
    msg = str(info.value)
    assert msg.startswith("4 bad files in dataset_dir")
    assert f"  {bad['truncated']}: truncated: pixel data has" in msg and "expected 32768" in msg
    assert f"  {bad['fake']}: not a DICOM file" in msg
    assert f"  {bad['nopixel']}: no pixel data" in msg
    assert f"  {bad['empty']}: empty class folder" in msg
    assert "--skip_bad_files true" in msg and str(tmp_path / "out" / "bad.csv") in msg
    assert len(info.value.problems) == 4 and not (tmp_path / "out").exists()


def test_bad_inputs_skipped_and_reported(tmp_path):
    bad = _bad_class_dataset(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    (out / "model.pt").write_bytes(b"\x00\x01")
    report = out / "bad_files.csv"
    col = ImageCollection(tmp_path / "data", skip_bad_files=True, report_path=report)
    assert (out / "keep.txt").read_text() == "precious" and (out / "model.pt").read_bytes() == b"\x00\x01"
    rows = read_report(report)
    data = tmp_path / "data"  # relative to the data set's folder: no absolute input path in the report
    assert {r["path"] for r in rows} == {
        bad[k].relative_to(data).as_posix() for k in ("truncated", "fake", "nopixel", "empty")
    }
    assert all(r["stage"] == "discovery" and r["reason"] for r in rows)
    assert col.class_names == ["a", "b"] and len(col.problems) == 4
    images = [r["image"] for r in col.records]
    assert str(bad["good"].parent) in images  # the intact series is one folder case
    partial = next(i for i in images if isinstance(i, list))  # bad series keeps its 2 good slices
    assert len(partial) == 2 and str(bad["nopixel"]) not in partial
    assert len(col) == 6
    img = LoadMedicalImage()(partial)
    assert tuple(img.shape) == (1, 32, 32, 2)


def test_empty_and_missing_root(tmp_path):
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "empty", tmp_path / "absent"):
        with pytest.raises(DataValidationError, match="contains no images; expected one of: class folders"):
            ImageCollection(root, skip_bad_files=True)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.md").write_text("nothing")
    (tmp_path / "docs" / "sub").mkdir()
    with pytest.raises(DataValidationError, match="contains no images"):
        ImageCollection(tmp_path / "docs")


def test_csv_missing_file_and_unknown_label(tmp_path):
    pngs = make_pngs(tmp_path / "img", 3)
    (tmp_path / "list.csv").write_text(
        f"path,label\nimg/{pngs[0].name},0\nimg/{pngs[1].name},7\nimg/nothere.png,1\nimg/{pngs[2].name},1\n"
    )
    with pytest.raises(DataValidationError) as info:
        ImageCollection(tmp_path, class_names=["neg", "pos"])
    msg = str(info.value)
    assert f"{pngs[1]}: unknown label '7'" in msg
    assert f"{tmp_path / 'img' / 'nothere.png'}: listed in list.csv row 4 but does not exist" in msg
    col = ImageCollection(tmp_path, class_names=["neg", "pos"], skip_bad_files=True, report_path=tmp_path / "r.csv")
    assert [r["image"] for r in col.records] == [str(pngs[0]), str(pngs[2])]
    assert len(read_report(tmp_path / "r.csv")) == 2


def test_npz_unknown_label(tmp_path):
    _write_npz(tmp_path / "m.npz", n=(6, 3, 3), max_label=2)
    with pytest.raises(DataValidationError) as info:
        ImageCollection(tmp_path, class_names=["a", "b"])
    assert "m.npz:train_images[2]: unknown label 2" in str(info.value)
    report = tmp_path / "out" / "skipped.csv"
    col = ImageCollection(tmp_path, class_names=["a", "b"], skip_bad_files=True, report_path=report)
    assert len(col) == 8 and {r["label"] for r in col.records} == {0, 1}
    # the report names the array within the .npz relative to the data set's folder, as the records' root says
    assert [r["path"] for r in read_report(report)] == [
        f"m.npz:{split}_images[{i}]" for split, i in (("train", 2), ("train", 5), ("val", 2), ("test", 2))
    ]
    assert {r["dataset_root"] for r in col.records} == {str(tmp_path)}


def test_dicom_without_geometry_are_single_images(tmp_path):
    template = pydicom.dcmread(CT_SMALL)
    uid = generate_uid()
    for c in ("left", "right"):
        (tmp_path / c).mkdir()
        for i in range(3):  # projection images: one SeriesInstanceUID, no position/orientation
            ds = copy.deepcopy(template)
            del ds.ImagePositionPatient
            del ds.ImageOrientationPatient
            ds.SeriesInstanceUID = uid
            ds.SOPInstanceUID = generate_uid()
            ds.save_as(tmp_path / c / f"x{i}.dcm")
    col = ImageCollection(tmp_path)
    assert col.layout == "class_folders" and len(col) == 6
    assert all(r["source_format"] == "dicom" and r["image"].endswith(".dcm") for r in col.records)
    assert tuple(LoadMedicalImage()(col.records[0]["image"]).shape) == (1, 128, 128)


def test_shared_ct_folder_ignores_non_medmnist_npz(shared_data):
    root = shared_data / "ct"
    if not (root / "dicom_file01.dcm").is_file():
        pytest.skip(f"real CT data not found at {root} (../shared/data is absent)")
    col = ImageCollection(root)  # also holds stent.npz (key arr_0): not a MedMNIST file, ignored
    assert col.layout == "loose_files" and [r["image"] for r in col.records] == [str(root / "dicom_file01.dcm")]


# ----------------------------------------------------------------------------------------------- fingerprint, labels
def _fingerprint(root: Path, **kwargs) -> str:
    return ImageCollection(root, seed=0, **kwargs).fingerprint()


def test_fingerprint_follows_the_content_not_the_location(tmp_path):
    data = tmp_path / "data"
    make_pngs(data / "normal", 4, value=0)
    make_pngs(data / "pneumonia", 4, value=100)
    slices = make_series(data / "pneumonia" / "scan", n=2)
    col = ImageCollection(data, seed=0)
    fp = col.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{16}", fp) and col.fingerprint() == fp
    assert {r["dataset_root"] for r in col.records} == {str(data)}
    elsewhere = shutil.copytree(data, tmp_path / "copied" / "to" / "another_name")
    assert _fingerprint(elsewhere) == fp  # the same data anywhere: the same fingerprint

    changed = {}
    changed["split"] = _fingerprint(elsewhere, val_fraction=0.0, test_fraction=0.0)
    changed["labels"] = _fingerprint(elsewhere, class_names=["pneumonia", "normal"])
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(elsewhere / "normal" / "img_002.png")
    changed["png"] = _fingerprint(elsewhere)
    shutil.copytree(data, elsewhere, dirs_exist_ok=True)  # back to the original
    assert _fingerprint(elsewhere) == fp
    dicom = elsewhere / slices[1].relative_to(data)
    raw = bytearray(dicom.read_bytes())
    raw[-1] ^= 1  # one bit of one pixel of one slice of a series
    dicom.write_bytes(bytes(raw))
    changed["dicom"] = _fingerprint(elsewhere)
    assert len({fp, *changed.values()}) == 5, changed


def test_fingerprint_of_npz_arrays(tmp_path):
    (tmp_path / "a").mkdir()
    arrays = _write_npz(tmp_path / "a" / "toy.npz")
    fp = _fingerprint(tmp_path / "a")
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "toy.npz", tmp_path / "b" / "renamed_folder_same_file.npz")
    assert _fingerprint(tmp_path / "b") == fp  # arrays are hashed by content (shape, dtype, bytes)
    arrays["test_images"][4, 0, 0] ^= 1
    np.savez(tmp_path / "b" / "renamed_folder_same_file.npz", **arrays)
    assert _fingerprint(tmp_path / "b") != fp
    arrays["test_images"][4, 0, 0] ^= 1
    arrays["test_labels"][4] = 0 if arrays["test_labels"][4] else 1
    np.savez(tmp_path / "b" / "renamed_folder_same_file.npz", **arrays)
    assert _fingerprint(tmp_path / "b") != fp


def test_require_labels(tmp_path):
    make_pngs(tmp_path / "two" / "a", 3)
    make_pngs(tmp_path / "two" / "b", 3)
    labelled = ImageCollection(tmp_path / "two")
    assert labelled.require_labels("an expert classifier") is labelled
    make_pngs(tmp_path / "loose", 3)
    with pytest.raises(DataValidationError) as info:
        ImageCollection(tmp_path / "loose").require_labels("train_expert.json (an expert classifier)")
    msg = str(info.value)
    assert msg.startswith(f"train_expert.json (an expert classifier) needs class labels, but dataset_dir "
                          f"'{tmp_path / 'loose'}' holds unlabelled images (loose_files layout)")  # fmt: skip
    assert "one folder per class" in msg and "at least 2 classes" in msg
    make_pngs(tmp_path / "one" / "only", 3)
    with pytest.raises(DataValidationError, match=r"holds only the classes \['only'\] \(class_folders layout\)"):
        ImageCollection(tmp_path / "one").require_labels("class-conditional training")
