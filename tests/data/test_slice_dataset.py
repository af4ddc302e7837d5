"""SliceDataset: loading, slicing, caching, labels, load-time bad files, checking other splits' files, speed."""

from __future__ import annotations

import copy
import csv
import logging
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
import torch
from monai.transforms import Compose, Resized
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medsyn_monai.data import (
    BadFileError,
    DataValidationError,
    ImageCollection,
    LoadMedicalImaged,
    SliceDataset,
)
from medsyn_monai.transforms import CTWindowd, ScaleToRanged, VolumeToSlicesd

CT_SMALL = get_testdata_file("CT_small.dcm")


def make_series(folder: Path, n: int, base: int, size: int = 128) -> None:
    """``n`` slices of ``size``x``size``; the slice at z = k has the constant raw value ``base + k``.

    File names run opposite to z so that only position ordering gives ``base, base+1, ...``.
    """
    template = pydicom.dcmread(CT_SMALL)
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    for k in range(n):
        ds = copy.deepcopy(template)
        ds.Rows = ds.Columns = size
        ds.PixelData = np.full((size, size), base + k, np.int16).tobytes()
        ds.ImagePositionPatient = [0.0, 0.0, float(k) * 1.5]
        ds.InstanceNumber = k + 1
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(folder / f"slice_{n - k:03d}.dcm")


def split_last_axis(item: dict) -> list[dict]:
    image = item["image"]
    return [{**item, "image": image[..., k]} for k in range(image.shape[-1])]


def test_series_to_cached_slices(tmp_path):
    make_series(tmp_path / "data" / "a" / "p1", n=4, base=1000)
    make_series(tmp_path / "data" / "a" / "p2", n=3, base=1100)
    make_series(tmp_path / "data" / "b" / "p3", n=5, base=1200)
    col = ImageCollection(tmp_path / "data", val_fraction=0.0, test_fraction=0.0)
    ds = SliceDataset(
        col.data("train"),
        preprocess=LoadMedicalImaged("image"),
        slicer=split_last_axis,
        slice_transform=Resized("image", spatial_size=(16, 16)),
        progress=False,
    )
    assert len(ds) == 12 and tuple(ds.images.shape) == (12, 1, 16, 16) and ds.images.dtype == torch.float32
    assert ds.labels.dtype == torch.long and ds.labels.tolist() == [0] * 7 + [1] * 5
    assert ds.num_slices_per_case == {"a/p1": 4, "a/p2": 3, "b/p3": 5}
    assert ds.case_ids[:4] == ["a/p1"] * 4
    # HU = raw - 1024, slices in position order, constant per slice (resize keeps it)
    expected = [1000 + k - 1024 for k in range(4)] + [1100 + k - 1024 for k in range(3)]
    expected += [1200 + k - 1024 for k in range(5)]
    assert [ds.images[i].unique().tolist() for i in range(12)] == [[float(v)] for v in expected]
    item = ds[5]
    assert set(item) == {"image", "label", "case_id"} and item["case_id"] == "a/p2"
    assert item["label"].dtype == torch.long and item["label"].ndim == 0 and item["label"].item() == 0
    assert item["image"].dtype == torch.float32 and tuple(item["image"].shape) == (1, 16, 16)


def test_2d_pngs_transform_and_half_cache(tmp_path):
    for c, v in (("x", 10), ("y", 200)):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(np.full((6, 9), v + i, np.uint8)).save(tmp_path / c / f"{i}.png")
    col = ImageCollection(tmp_path, val_fraction=0.0, test_fraction=0.0)

    def flip(d):
        return {**d, "image": torch.flip(d["image"], dims=(-1,)) * 0 + d["image"].mean()}

    ds = SliceDataset(col.data(), LoadMedicalImaged("image"), transform=flip, cache_dtype=torch.float16)
    assert ds.images.dtype == torch.float16 and tuple(ds.images.shape) == (6, 1, 9, 6)
    assert ds[4]["image"].dtype == torch.float32 and ds[4]["image"].unique().tolist() == [201.0]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_tiff_stacks_and_pages_through_slice_dataset(tmp_path):
    rng = np.random.default_rng(5)
    stacks = {}
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        stacks[c] = rng.integers(0, 65536, (4, 6, 9), dtype=np.uint16)  # 4 pages of 6 rows x 9 columns
        tifffile.imwrite(tmp_path / c / "stack.tif", stacks[c], photometric="minisblack")
    single = rng.integers(0, 65536, (6, 9), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "b" / "page.tif", single)
    col = ImageCollection(tmp_path, val_fraction=0.0, test_fraction=0.0)
    ds = SliceDataset(
        col.data(),
        Compose([LoadMedicalImaged("image"), ScaleToRanged("image", source="auto")]),
        slicer=VolumeToSlicesd("image"),
        progress=False,
    )
    assert tuple(ds.images.shape) == (9, 1, 9, 6) and ds.labels.tolist() == [0] * 4 + [1] * 5
    assert ds.num_slices_per_case == {"a/stack.tif": 4, "b/page.tif": 1, "b/stack.tif": 4}
    scaled = [stacks["a"][k].T / 65535.0 * 2.0 - 1.0 for k in range(4)] + [single.T / 65535.0 * 2.0 - 1.0]
    scaled += [stacks["b"][k].T / 65535.0 * 2.0 - 1.0 for k in range(4)]
    np.testing.assert_allclose(ds.images[:, 0].numpy(), np.stack(scaled), atol=1e-6)


def _ct_volume(case_body: bool = False) -> torch.Tensor:
    """8x8x4 CT in HU: air (-1000) with one soft-tissue pixel (40 HU) in slice 2, i.e. 1/64 of it."""
    vol = torch.full((1, 8, 8, 4), -1000.0)
    vol[0, 0, 0, 2] = 40.0
    if case_body:
        vol[0, 2:6, 2:6, 1] = 40.0  # 16/64 = 25 % of slice 1
    return vol


def test_foreground_filter_removing_every_slice_says_why(tmp_path, caplog):
    preprocess = Compose([CTWindowd("image", preset="soft_tissue", b_min=-1.0, b_max=1.0)])
    slicer = VolumeToSlicesd("image", min_foreground_fraction=0.05, foreground_threshold=-0.99)
    records = [{"image": _ct_volume(), "label": 0, "case_id": "p1"}]
    with pytest.raises(DataValidationError) as info:
        SliceDataset(records, preprocess, slicer=slicer, progress=False)
    msg = str(info.value)
    assert msg.startswith("no slice left to train on out of 1 record(s): the slicer kept no slice of 1 volume(s)")
    assert "min_foreground_fraction=0.05 (5%)" in msg and "foreground_threshold=-0.99" in msg
    # -0.99 on the [-1, 1] output of the soft tissue window (-160..240 HU) is -158 HU
    assert "CT window 'soft_tissue' (-160 to 240 HU), i.e. -158 HU" in msg
    assert "largest foreground fraction found is 0.0156 (1.56%, slice 2 of 'p1'), below the 0.05 required" in msg
    assert "lower --min_foreground_fraction (to 0.0156 or less" in msg and "--ct_window" in msg
    assert info.value.problems == []
    # without a CT window: the threshold is in the data's own units, the automatic one is named; no CT hint
    with pytest.raises(DataValidationError) as info:
        half = VolumeToSlicesd("image", min_foreground_fraction=0.5)
        SliceDataset([{"image": _ct_volume() + 1000.0, "case_id": "x"}], None, slicer=half, progress=False)
    msg = str(info.value)
    assert "automatic foreground_threshold 10.4 (minimum + 1% of the range of 'x'" in msg and "--ct_window" not in msg
    assert "min_foreground_fraction=0.5 (50%)" in msg and "0.0156" in msg
    # one volume emptied, another kept: a warning, not an error
    records.append({"image": _ct_volume(case_body=True), "label": 1, "case_id": "p2"})
    with caplog.at_level("WARNING", logger="medsyn_monai.data.slice_dataset"):
        ds = SliceDataset(records, preprocess, slicer=slicer, progress=False)
    assert ds.case_ids == ["p2"] and "slice 2 of 'p1'" in caplog.text


def test_load_time_bad_file_reported_with_path(tmp_path):
    make_series(tmp_path / "ok", n=2, base=500, size=16)
    raw = Path(CT_SMALL).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(raw[: int(len(raw) * 0.6)])  # a record that skipped discovery: truncated pixel data
    records = [
        {"image": str(tmp_path / "ok"), "label": 0, "case_id": "ok"},
        {"image": str(cut), "label": 1, "case_id": "cut"},
    ]
    with pytest.raises(DataValidationError) as info:
        SliceDataset(records, LoadMedicalImaged("image"), slicer=split_last_axis, progress=False)
    assert f"  {cut}: truncated: pixel data has" in str(info.value)
    assert info.value.problems[0].stage == "load"

    report = tmp_path / "out" / "bad_files.csv"
    report.parent.mkdir()
    report.write_text("path,stage,reason\n/x/old.dcm,discovery,not a DICOM file\n")
    ds = SliceDataset(
        records, LoadMedicalImaged("image"), slicer=split_last_axis, skip_bad_files=True, report_path=report
    )
    assert len(ds) == 2 and ds.case_ids == ["ok", "ok"] and ds.labels.tolist() == [0, 0]
    with open(report, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "stage", "reason"] and rows[1][0] == "/x/old.dcm" and len(rows) == 3
    assert rows[2][0] == str(cut) and rows[2][1] == "load" and rows[2][2].startswith("truncated")


def test_any_preprocess_error_becomes_bad_file(tmp_path):
    def broken(d):
        raise RuntimeError("boom")

    with pytest.raises(DataValidationError, match="rec.png: RuntimeError: boom"):
        SliceDataset([{"image": "rec.png", "case_id": "r"}], broken, progress=False)
    with pytest.raises(DataValidationError, match="no slice left"):
        SliceDataset([{"image": "rec.png", "case_id": "r"}], broken, skip_bad_files=True, progress=False)
    err = BadFileError("a.png", "x")
    assert err.stage == "discovery"


def test_shape_mismatch_and_missing_slicer(tmp_path):
    recs = [{"image": torch.zeros(1, 8, 8), "case_id": "a"}, {"image": torch.zeros(1, 8, 6), "case_id": "b"}]
    with pytest.raises(ValueError, match="image_size"):
        SliceDataset(recs, preprocess=None, progress=False)
    with pytest.raises(ValueError, match="slicer"):
        SliceDataset([{"image": torch.zeros(1, 4, 4, 3), "case_id": "v"}], preprocess=None, progress=False)
    ds = SliceDataset([{"image": torch.ones(1, 4, 4, 1), "case_id": "d1"}], preprocess=None, progress=False)
    assert tuple(ds.images.shape) == (1, 1, 4, 4) and ds.labels is None and "label" not in ds[0]


def test_loading_speed_24_series(tmp_path):
    for s in range(24):
        make_series(tmp_path / "data" / f"scan{s:02d}", n=16, base=100 * s)
    col = ImageCollection(tmp_path / "data", val_fraction=0.0, test_fraction=0.0)
    assert col.layout == "series_folders" and len(col) == 24
    start = time.perf_counter()
    ds = SliceDataset(col.data(), LoadMedicalImaged("image"), slicer=split_last_axis, progress=False)
    elapsed = time.perf_counter() - start
    assert tuple(ds.images.shape) == (384, 1, 128, 128)
    assert elapsed < 10.0, f"loading 24 series of 16 slices took {elapsed:.1f}s"


def test_real_ct_demo_end_to_end(tmp_path):
    from medsyn_monai.apps.demo import create_demo

    col = ImageCollection(create_demo("ct", tmp_path / "ct"), val_fraction=0.1, test_fraction=0.1)
    assert col.layout == "class_folders" and col.labelled and col.num_classes == 2
    assert all(r["source_format"] == "dicom_series" for r in col.records)
    train = col.data("train")
    ds = SliceDataset(train, LoadMedicalImaged("image"), slicer=split_last_axis, progress=False)
    assert len(ds) == sum(ds.num_slices_per_case.values()) and set(ds.num_slices_per_case) == {
        r["case_id"] for r in train
    }
    assert ds.images.ndim == 4 and ds.images.shape[1] == 1
    assert ds.images.min().item() >= -1100.0 and ds.images.max().item() <= 4000.0  # Hounsfield units
    assert ds.labels.tolist() == [next(r["label"] for r in train if r["case_id"] == cid) for cid in ds.case_ids]


def _too_bright(item: dict) -> dict:
    """A slice transform that fails on slices above 250 (shows that check_files applies it)."""
    if item["image"].max() > 250:
        raise ValueError("too bright")
    return item


def test_check_files_loads_like_the_dataset_and_keeps_nothing(tmp_path):
    data = tmp_path / "data"
    volumes = {"a/train.nii.gz": np.full((8, 8, 3), 10.0), "b/val.nii.gz": np.full((8, 8, 2), 20.0),
               "b/nan.nii.gz": np.full((8, 8, 2), np.nan), "b/bright.nii.gz": np.full((8, 8, 1), 255.0)}  # fmt: skip
    for name, vol in volumes.items():
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(vol.astype(np.float32), np.eye(4)), data / name)
    col = ImageCollection(data, val_fraction=0.0, test_fraction=0.0)  # NaN only shows when the pixels are read
    by_name = {Path(r["image"]).relative_to(data).as_posix(): r for r in col.records}
    others = [by_name[n] for n in ("b/val.nii.gz", "b/nan.nii.gz", "b/bright.nii.gz")]
    report = tmp_path / "out" / "skipped_files.csv"

    def train_set(skip_bad_files: bool) -> SliceDataset:
        return SliceDataset([by_name["a/train.nii.gz"]], LoadMedicalImaged("image"), slicer=split_last_axis,
                            slice_transform=_too_bright, skip_bad_files=skip_bad_files, report_path=report,
                            progress=False)  # fmt: skip

    ds = train_set(skip_bad_files=False)
    images = ds.images.clone()

    with pytest.raises(DataValidationError) as info:
        ds.check_files(others, "validation and test records")
    lines = str(info.value).splitlines()
    assert lines[0] == "2 bad files in checking 3 validation and test records:"
    nan_reason = "128 NaN and 0 infinite value(s) among 128: an image must hold finite numbers (fix or remove the file)"
    assert lines[1] == f"  {data / 'b' / 'nan.nii.gz'}: {nan_reason}"
    assert lines[2] == f"  {data / 'b' / 'bright.nii.gz'}: slicing/transform failed: ValueError: too bright"
    assert [p.stage for p in info.value.problems] == ["load", "load"] and not report.exists()
    # the dataset is as it was: its own slices only, no problem recorded
    assert len(ds) == 3 and torch.equal(ds.images, images) and ds.case_ids == ["a/train.nii.gz"] * 3
    assert ds.problems == []
    assert ds.check_files(others[:1], "validation records") == 2  # the slices those records give

    skipping = train_set(skip_bad_files=True)
    assert skipping.check_files(others, "test records") == 2
    with open(report, newline="") as f:
        rows = list(csv.reader(f))
    assert [row[:2] for row in rows] == [["path", "stage"], ["b/nan.nii.gz", "load"], ["b/bright.nii.gz", "load"]]
    assert skipping.problems == [] and len(skipping) == 3


def test_check_files_warns_of_leaks_and_degenerate_images(caplog):
    g = torch.Generator().manual_seed(0)
    train_images = [torch.rand(1, 4, 4, generator=g) for _ in range(3)]
    train = SliceDataset([{"image": im, "case_id": f"train/{i}"} for i, im in enumerate(train_images)], None,
                         progress=False)  # fmt: skip
    held_out = [{"image": train_images[1].clone(), "case_id": "test/0"},
                {"image": torch.zeros(1, 4, 4), "case_id": "test/1"}]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="medsyn_monai.data.quality"):
        assert train.check_files(held_out, "val/test records") == 2
    assert "training data: 1 degenerate image(s)" in caplog.text and "test/1 (constant)" in caplog.text
    assert "1 across sets" in caplog.text and "train:train/1 = val/test records:test/0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medsyn_monai.data.quality"):
        train.check_files(held_out, "val/test records", audit=False)
    assert not caplog.text
