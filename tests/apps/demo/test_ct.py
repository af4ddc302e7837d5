"""Tests of :mod:`medsyn_monai.apps.demo.ct`: the synthetic CT demo collection written as DICOM series."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medsyn_monai.apps.demo import create_demo
from medsyn_monai.apps.demo import ct as demo_module
from medsyn_monai.apps.demo.ct import (
    CT_PHANTOM_LABELS,
    CTPhantomParams,
    create_ct_demo,
    ct_demo_case_classes,
    ct_phantom_slice,
    ct_phantom_volume,
)

KIND = "ct"
SMALL = {"num_cases": 4, "num_slices": 5, "size": 64, "seed": 3}
LIVER, LESION, MUSCLE = CT_PHANTOM_LABELS["liver"], CT_PHANTOM_LABELS["lesion"], CT_PHANTOM_LABELS["muscle"]


def _series(case_dir: Path) -> list[pydicom.Dataset]:
    """All files of a case, read strictly and sorted by ImagePositionPatient z."""
    datasets = [pydicom.dcmread(f) for f in case_dir.glob("*.dcm")]
    return sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))


def _hu(datasets: list[pydicom.Dataset]) -> np.ndarray:
    return np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in datasets])


def _snapshot(root: Path) -> dict[str, tuple[bytes, str]]:
    """Relative path -> (pixel bytes, SOPInstanceUID) of every file."""
    out = {}
    for f in sorted(root.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        out[f.relative_to(root).as_posix()] = (ds.PixelData, ds.SOPInstanceUID)
    return out


def test_phantom_volume_shapes_and_determinism():
    params = CTPhantomParams.from_rng(np.random.default_rng([0, 5]))
    vol = ct_phantom_volume(np.random.default_rng([0, 5]), num_slices=4, size=64)
    assert vol.shape == (4, 64, 64) and vol.dtype == np.float32
    np.testing.assert_array_equal(vol, ct_phantom_volume(params, num_slices=4, size=64))
    other = ct_phantom_volume(np.random.default_rng([1, 5]), num_slices=4, size=64)
    assert np.abs(vol - other).mean() > 20.0
    # slices of one case differ beyond noise, and the noiseless slice matches ct_phantom_slice
    clean, labels = ct_phantom_volume(params, num_slices=4, size=64, noise=False, return_labels=True)
    assert not np.array_equal(labels[0], labels[-1])
    np.testing.assert_allclose(clean[1], ct_phantom_slice(params, 1 / 3, 64), atol=1e-4)
    # air is flat -1000 before noise; the additive noise has the sigma the parameters say
    assert np.all(clean[:, :4, :4] == -1000.0) and np.all(labels[:, :4, :4] == CT_PHANTOM_LABELS["air"])
    assert abs((vol - clean).std() - params.noise_sigma) < 0.3


def test_phantom_tissue_values():
    vol, labels = ct_phantom_volume(np.random.default_rng([0, 2]), num_slices=8, size=128, return_labels=True)
    # every slice: body, liver, muscle, bone (vertebra) and marrow; lungs only in upper slices
    for name in ("subcutaneous_fat", "muscle", "visceral_fat", "liver", "bone", "marrow", "spinal_canal"):
        assert all((labels[k] == CT_PHANTOM_LABELS[name]).sum() > 3 for k in range(8)), name
    lung = (labels == CT_PHANTOM_LABELS["lung"]).sum(axis=(1, 2))
    assert lung[0] == 0 and lung[-1] > 50
    assert (labels == CT_PHANTOM_LABELS["lesion"]).sum() == 0
    assert abs(np.median(vol[labels == LIVER]) - 60) < 8
    assert abs(np.median(vol[labels == MUSCLE]) - 43) < 8
    assert abs(np.median(vol[labels == CT_PHANTOM_LABELS["subcutaneous_fat"]]) + 100) < 15
    assert abs(np.median(vol[labels == CT_PHANTOM_LABELS["lung"]]) + 850) < 30
    assert np.median(vol[labels == CT_PHANTOM_LABELS["bone"]]) > 500
    # liver on the patient's right = image left, spine posterior = image bottom
    rows, cols = np.nonzero(labels[4] == LIVER)
    assert cols.mean() < 64
    rows, cols = np.nonzero(labels[4] == CT_PHANTOM_LABELS["marrow"])
    assert rows.mean() > 64 and abs(cols.mean() - 64) < 10


def test_phantom_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="size"):
        ct_phantom_volume(rng, 2, size=32)
    with pytest.raises(ValueError, match="num_slices"):
        ct_phantom_volume(rng, 0, size=64)
    with pytest.raises(ValueError, match="Generator"):
        ct_phantom_volume(0, 2, size=64)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="t must be"):
        ct_phantom_slice(rng, 1.5, 64)


def test_demo_determinism(tmp_path: Path, small_demo: Path):
    again = create_ct_demo(tmp_path / "again", **SMALL)
    first, second = _snapshot(small_demo), _snapshot(again)
    assert len(first) == SMALL["num_cases"] * SMALL["num_slices"]
    assert first == second
    assert (small_demo / "dataset.json").read_bytes() == (again / "dataset.json").read_bytes()
    other = _snapshot(create_ct_demo(tmp_path / "other", **{**SMALL, "seed": 4}))
    first_uids = {uid for _, uid in first.values()}
    assert first_uids.isdisjoint(uid for _, uid in other.values())
    assert {pix for pix, _ in first.values()}.isdisjoint(pix for pix, _ in other.values())


def test_demo_layout_and_metadata(small_demo: Path):
    meta = json.loads((small_demo / "dataset.json").read_text())
    assert meta["classes"] == ["normal", "lesion"] and meta["synthetic"] is True
    assert meta["generator"]["parameters"]["seed"] == SMALL["seed"] and meta["version"] == demo_module.CT_DEMO_VERSION
    assert [c["class"] for c in meta["cases"]] == ct_demo_case_classes(4, seed=3)
    assert sorted(c["class"] for c in meta["cases"]) == ["lesion", "lesion", "normal", "normal"]
    readme = (small_demo / "README.md").read_text()
    assert "SYNTHETIC DEMO DATA" in readme and "not patient data" in readme.lower()
    assert sorted(p.name for p in small_demo.iterdir()) == ["README.md", "dataset.json", "lesion", "normal"]
    series_uids = set()
    for case in meta["cases"]:
        case_dir = small_demo / case["path"]
        assert case_dir.parent.name == case["class"] and case_dir.name == case["case"]
        assert case["case"].startswith("demo_case_")
        names = sorted(f.name for f in case_dir.glob("*.dcm"))
        assert len(names) == SMALL["num_slices"] and all(n.startswith("IM_") for n in names)
        datasets = {f.name: pydicom.dcmread(f, stop_before_pixels=True) for f in case_dir.glob("*.dcm")}
        uids = {ds.SeriesInstanceUID for ds in datasets.values()}
        assert uids == {case["series_instance_uid"]}
        series_uids |= uids
        # file-name order is not z order, but InstanceNumber ascends with z
        by_name = [int(datasets[n].InstanceNumber) for n in names]
        assert by_name != sorted(by_name)
        by_z = sorted(datasets.values(), key=lambda ds: float(ds.ImagePositionPatient[2]))
        assert [int(ds.InstanceNumber) for ds in by_z] == list(range(1, SMALL["num_slices"] + 1))
        assert [float(ds.ImagePositionPatient[2]) for ds in by_z] == [5.0 * k for k in range(SMALL["num_slices"])]
    assert len(series_uids) == SMALL["num_cases"]


def test_demo_dicom_files(small_demo: Path):
    meta = json.loads((small_demo / "dataset.json").read_text())
    studies = set()
    for index, case in enumerate(meta["cases"]):
        datasets = _series(small_demo / case["path"])  # dcmread without force: valid Part 10 files
        for k, ds in enumerate(datasets):
            fm = ds.file_meta
            assert fm.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" == fm.MediaStorageSOPClassUID
            assert fm.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert ds.Modality == "CT" and ds.PatientIdentityRemoved == "YES"
            assert str(ds.PatientName) == f"Synthetic^Demo^{case['case']}" and ds.PatientID == f"DEMO-{case['case']}"
            assert not ds.get("PatientBirthDate") and ds.StudyDate == "20000101"
            assert ds.AccessionNumber == "" and str(ds.ReferringPhysicianName) == ""
            assert ds.SeriesDescription == f"SYNTHETIC DEMO PHANTOM - {case['class']}"
            assert ds.Manufacturer == "medsyn_monai synthetic phantom" and ds.BurnedInAnnotation == "NO"
            assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]
            assert "not patient data" in ds.ImageComments
            assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
            assert float(ds.PixelSpacing[0]) == pytest.approx(350 / 64, abs=1e-5)
            assert float(ds.SliceThickness) == 5.0 and float(ds.SliceLocation) == 5.0 * k
            assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (64, 64, 16, 12, 11)
            assert ds.PixelRepresentation == 0 and ds.PhotometricInterpretation == "MONOCHROME2"
            assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1 and ds.RescaleType == "HU"
            assert float(ds.WindowCenter) == 40 and float(ds.WindowWidth) == 400
            assert ds.FrameOfReferenceUID and ds.StudyInstanceUID and ds.SamplesPerPixel == 1
            studies.add(ds.StudyInstanceUID)
        hu = _hu(datasets)
        assert abs(hu[:, :3, :3].mean() + 1000) < 8
        assert hu.max() > 300
        # the stored pixels are exactly the phantom (rounded), and muscle reads ~40 HU
        expected, labels = ct_phantom_volume(
            np.random.default_rng([SMALL["seed"], index]), 5, 64, lesion=case["class"] == "lesion", return_labels=True
        )
        np.testing.assert_array_equal(hu, np.clip(np.rint(expected), -1024, 3071))
        assert abs(np.median(hu[labels == MUSCLE]) - 43) < 10
    assert len(studies) == SMALL["num_cases"]


def test_demo_lesion_in_every_slice(small_demo: Path):
    meta = json.loads((small_demo / "dataset.json").read_text())
    for index, case in enumerate(meta["cases"]):
        hu = _hu(_series(small_demo / case["path"]))
        rng = np.random.default_rng([SMALL["seed"], index])
        # where the lesion is (or would be) in this case: render the same case with the lesion
        _, with_lesion = ct_phantom_volume(rng, 5, 64, lesion=True, noise=False, return_labels=True)
        for k in range(SMALL["num_slices"]):
            region, liver = with_lesion[k] == LESION, with_lesion[k] == LIVER
            assert region.sum() >= 3, (case["case"], k)
            drop = hu[k][liver].mean() - hu[k][region].mean()
            if case["class"] == "lesion":
                assert drop > 15, (case["case"], k, drop)
            else:
                assert abs(drop) < 12, (case["case"], k, drop)


def test_demo_lesion_contrast_default_size():
    for case in range(3):
        vol, labels = ct_phantom_volume(np.random.default_rng([0, case]), 16, 128, lesion=True, return_labels=True)
        for k in range(16):
            assert (labels[k] == LESION).sum() >= 8
            assert vol[k][labels[k] == LIVER].mean() - vol[k][labels[k] == LESION].mean() > 20


def test_demo_existing_folders(tmp_path: Path, small_demo: Path, check_existing_folders):
    check_existing_folders(create_ct_demo, small_demo, SMALL, tmp_path)
    assert (small_demo / "normal").is_dir()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(list(create_ct_demo(empty, **SMALL).rglob("*.dcm"))) == 20


def test_demo_interrupted_run_leaves_nothing_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = []
    real_write = demo_module._write_case

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(demo_module, "_write_case", failing_write)
    root = tmp_path / "ct"
    with pytest.raises(KeyboardInterrupt):
        create_ct_demo(root, **SMALL)
    assert list(root.iterdir()) == []  # the temporary folder was removed, nothing was moved in
    monkeypatch.setattr(demo_module, "_write_case", real_write)
    # a stale temporary folder of a dead process is ignored and cleaned up
    stale = root / ".tmp_demo_999999999_dead"
    stale.mkdir()
    (stale / "x.dcm").write_bytes(b"partial")
    create_ct_demo(root, **SMALL)
    assert not stale.exists() and (root / "dataset.json").is_file()
    # a folder with the demo's entries but no dataset.json does not look complete
    os.remove(root / "dataset.json")
    with pytest.raises(ValueError, match="no dataset.json"):
        create_ct_demo(root, **SMALL)


def test_create_demo_dispatch(tmp_path: Path):
    root = create_demo("ct", tmp_path / "ct", num_cases=2, num_slices=2, size=64)
    assert len(list(root.rglob("*.dcm"))) == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_cases": 0}, "num_cases"),
        ({"num_slices": 0}, "num_slices"),
        ({"size": 32}, "size"),
        ({"seed": -1}, "seed"),
        ({"lesion_fraction": 1.5}, "lesion_fraction"),
    ],
)
def test_demo_bad_arguments(tmp_path: Path, kwargs: dict, match: str):
    with pytest.raises(ValueError, match=match):
        create_ct_demo(tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad").exists()


def test_demo_default_collection_timing(tmp_path: Path):
    start = time.perf_counter()
    root = create_ct_demo(tmp_path / "ct")
    elapsed = time.perf_counter() - start
    print(f"default CT demo (24 cases x 16 slices x 128^2) written in {elapsed:.2f} s")
    meta = json.loads((root / "dataset.json").read_text())
    assert len(meta["cases"]) == 24 and len(list(root.rglob("*.dcm"))) == 24 * 16
    assert sum(c["class"] == "lesion" for c in meta["cases"]) == 12
