"""DicomSeriesReader via LoadMedicalImage: compressed transfer syntaxes, HU, series order and geometry, bad files."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file
from pydicom.uid import UID, generate_uid

from medsyn_monai.data import BadFileError, DicomSeriesReader, LoadMedicalImage
from tests.data._helpers import to_xy


def _testfile(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not available")
    return path


def _pixels(name: str) -> np.ndarray:
    return pydicom.dcmread(_testfile(name)).pixel_array


def make_series(
    folder: Path,
    n: int = 6,
    step: float = 2.5,
    iop: tuple = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    origin: tuple = (-40.0, -30.0, 10.0),
    shuffle_seed: int = 1,
    shape: tuple = (128, 128),
) -> list[np.ndarray]:
    """Write a CT series from CT_small.dcm whose file names and InstanceNumbers are NOT in position order.

    Slice k (k-th along the normal) has raw values ``100 * (k + 1) + (row % 7)``. Returns the raw arrays in position
    order.
    """
    template = pydicom.dcmread(_testfile("CT_small.dcm"))
    folder.mkdir(parents=True, exist_ok=True)
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    normal = np.cross(row, col)
    uid = generate_uid()
    order = list(range(n))
    random.Random(shuffle_seed).shuffle(order)
    arrays = []
    for k in range(n):
        arr = (100 * (k + 1) + (np.arange(shape[0])[:, None] % 7) + np.zeros(shape, int)).astype(np.int16)
        arrays.append(arr)
        ds = copy.deepcopy(template)
        ds.Rows, ds.Columns = shape
        ds.PixelData = arr.tobytes()
        ds.ImageOrientationPatient = [float(v) for v in iop]
        # in-plane offsets must not change the order: only the projection on the normal counts
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + k * step * normal + (k % 2) * 3.0 * row]
        ds.InstanceNumber = n - k  # reversed on purpose
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(folder / f"IM_{order[k]:03d}.dcm")
    return arrays


# ----------------------------------------------------------------------------------------------- single DICOM files
def test_ct_small_hu_rescale():
    path = _testfile("CT_small.dcm")
    ds = pydicom.dcmread(path)
    img = LoadMedicalImage()(path)
    assert tuple(img.shape) == (1, 128, 128) and img.dtype == torch.float32
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    assert intercept == -1024.0
    raw = ds.pixel_array.astype(np.float64)
    assert img[0, 20, 10].item() == raw[10, 20] * slope + intercept  # (x=col, y=row)
    np.testing.assert_array_equal(img.numpy(), to_xy(raw * slope + intercept).astype(np.float32))
    assert img.meta["source_format"] == "dicom"
    assert img.meta["bit_depth"] == 16 and img.meta["modality"] == "CT"
    assert img.meta["photometric_interpretation"] == "MONOCHROME2"
    np.testing.assert_allclose(img.meta["spacing"], [float(v) for v in ds.PixelSpacing])


@pytest.mark.parametrize(
    "name, reference",
    [
        ("MR_small_RLE.dcm", "MR_small.dcm"),
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
    ],
)
def test_lossless_compressed_equal_uncompressed(name, reference):
    img = LoadMedicalImage()(_testfile(name))
    ref = LoadMedicalImage()(_testfile(reference))
    assert tuple(img.shape) == (1, 64, 64)
    assert torch.equal(img, ref)
    np.testing.assert_array_equal(img.numpy(), to_xy(_pixels(reference)).astype(np.float32))


def test_jpeg2000_close_to_reference():
    img = LoadMedicalImage()(_testfile("JPEG2000.dcm"))
    assert tuple(img.shape) == (1, 256, 1024)
    np.testing.assert_array_equal(img.numpy(), to_xy(_pixels("JPEG2000.dcm")).astype(np.float32))
    # the same image in JPEG extended (12 bit): lossy codecs, so equal within tolerance
    other = LoadMedicalImage()(_testfile("JPGExtended.dcm")).numpy().astype(np.float64)
    diff = np.abs(img.numpy() - other)
    assert diff.mean() < 6.0
    assert np.corrcoef(img.numpy().ravel(), other.ravel())[0, 1] > 0.95


def test_jpeg_extended_12bit():
    img = LoadMedicalImage()(_testfile("JPGExtended.dcm"))
    assert img.meta["bit_depth"] == 12
    np.testing.assert_array_equal(img.numpy(), to_xy(_pixels("JPGExtended.dcm")).astype(np.float32))
    assert 0 <= img.min().item() and img.max().item() < 4096


def test_jpeg_ls_near_lossless_16bit():
    img = LoadMedicalImage()(_testfile("JPEGLSNearLossless_16.dcm"))
    assert tuple(img.shape) == (1, 10, 50)
    np.testing.assert_array_equal(img.numpy(), to_xy(_pixels("JPEGLSNearLossless_16.dcm")).astype(np.float32))
    assert img.max().item() > 255  # 16-bit values kept


def test_jpeg_baseline_rgb_close_to_rle_reference():
    img = LoadMedicalImage()(_testfile("SC_rgb_jpeg_dcmtk.dcm"))
    assert tuple(img.shape) == (3, 100, 100) and img.meta["bit_depth"] == 8
    ref = to_xy(_pixels("SC_rgb_rle.dcm").astype(np.float32))  # lossless RLE of the same picture
    diff = np.abs(img.numpy() - ref)
    assert diff.max() <= 10 and diff.mean() < 2


def test_shared_real_ct_slice(shared_data):
    path = shared_data / "ct" / "dicom_file01.dcm"
    if not path.is_file():
        pytest.skip(f"real CT slice not found at {path} (../shared/data is absent)")
    ds = pydicom.dcmread(path)
    img = LoadMedicalImage()(path)
    assert tuple(img.shape) == (1, 512, 512)
    np.testing.assert_array_equal(img.numpy(), to_xy(ds.pixel_array.astype(np.float32) - 1024.0))
    corner = img[0, :24, :24]
    assert -1100.0 < corner.mean().item() < -900.0  # air around the phantom
    assert img.meta["modality"] == "CT" and img.meta["bit_depth"] == 12


# ----------------------------------------------------------------------------------------------- DICOM series
def test_series_ordered_by_position_not_name_or_instance_number(tmp_path):
    arrays = make_series(tmp_path / "s", n=6, step=2.5)
    files = sorted((tmp_path / "s").iterdir())
    assert [pydicom.dcmread(f).ImagePositionPatient[2] for f in files] != sorted(
        pydicom.dcmread(f).ImagePositionPatient[2] for f in files
    )  # file names are not in position order
    img = LoadMedicalImage()(tmp_path / "s")
    assert tuple(img.shape) == (1, 128, 128, 6)
    expected = np.stack([a.T.astype(np.float32) - 1024.0 for a in arrays], axis=-1)[None]
    np.testing.assert_array_equal(img.numpy(), expected)
    assert img.meta["source_format"] == "dicom_series"
    np.testing.assert_allclose(img.meta["spacing"][2], 2.5)
    # a list of the files (any order) is one series too
    img2 = LoadMedicalImage()(list(reversed(files)))
    assert torch.equal(img, img2)


def test_series_affine_uses_last_slice_in_position_order(tmp_path):
    make_series(tmp_path / "s", n=5, step=3.0, origin=(0.0, 0.0, -20.0))
    reader = DicomSeriesReader(affine_lps_to_ras=False)
    _, meta = reader.get_data(reader.read(str(tmp_path / "s")))
    positions = sorted(
        (np.asarray(pydicom.dcmread(f).ImagePositionPatient, float) for f in (tmp_path / "s").iterdir()),
        key=lambda p: p[2],
    )
    affine = meta["affine"]
    np.testing.assert_allclose(affine @ np.array([0, 0, 0, 1.0]), [*positions[0], 1.0], atol=1e-6)
    np.testing.assert_allclose(affine @ np.array([0, 0, 4, 1.0]), [*positions[-1], 1.0], atol=1e-6)
    np.testing.assert_allclose(meta["lastImagePositionPatient"], positions[-1])


def test_oblique_series(tmp_path):
    t = np.deg2rad(30.0)
    iop = (1.0, 0.0, 0.0, 0.0, float(np.cos(t)), float(-np.sin(t)))
    arrays = make_series(tmp_path / "obl", n=5, step=1.25, iop=iop, shuffle_seed=3)
    img = LoadMedicalImage()(tmp_path / "obl")
    expected = np.stack([a.T.astype(np.float32) - 1024.0 for a in arrays], axis=-1)[None]
    np.testing.assert_array_equal(img.numpy(), expected)
    np.testing.assert_allclose(img.meta["spacing"][2], 1.25, rtol=1e-6)
    # the RAS affine maps voxel (0, 0, k) to the k-th position (LPS -> RAS flips x and y)
    reader = DicomSeriesReader()
    _, meta = reader.get_data(reader.read(str(tmp_path / "obl")))
    normal = np.cross(iop[:3], iop[3:])
    ipps = [np.asarray(pydicom.dcmread(f).ImagePositionPatient) for f in sorted((tmp_path / "obl").iterdir())]
    ipps.sort(key=lambda p: float(p @ normal))
    for k in (0, 4):
        lps = np.diag([-1, -1, 1, 1]) @ meta["affine"] @ np.array([0, 0, k, 1.0])
        np.testing.assert_allclose(lps[:3], ipps[k], atol=1e-5)


def test_series_duplicate_position_is_bad_file(tmp_path):
    make_series(tmp_path / "dup", n=4)
    files = sorted((tmp_path / "dup").iterdir())
    a, b = pydicom.dcmread(files[0]), pydicom.dcmread(files[1])
    b.ImagePositionPatient = a.ImagePositionPatient
    b.save_as(files[1])
    with pytest.raises(BadFileError) as info:
        LoadMedicalImage()(tmp_path / "dup")
    assert "duplicate slice position" in info.value.reason
    assert info.value.path in {str(files[0]), str(files[1])} and info.value.stage == "load"


def test_series_missing_position_and_shape_mismatch(tmp_path):
    make_series(tmp_path / "nopos", n=3)
    victim = sorted((tmp_path / "nopos").iterdir())[1]
    ds = pydicom.dcmread(victim)
    del ds.ImagePositionPatient
    ds.save_as(victim)
    with pytest.raises(BadFileError) as info:
        LoadMedicalImage()(tmp_path / "nopos")
    assert info.value.path == str(victim) and "ImagePositionPatient" in info.value.reason

    make_series(tmp_path / "shape", n=3)
    victim = sorted((tmp_path / "shape").iterdir())[2]
    ds = pydicom.dcmread(victim)
    ds.Rows, ds.Columns = 64, 64
    ds.PixelData = np.zeros((64, 64), np.int16).tobytes()
    ds.save_as(victim)
    with pytest.raises(BadFileError) as info:
        LoadMedicalImage()(tmp_path / "shape")
    assert info.value.path == str(victim) and "shape" in info.value.reason


# ----------------------------------------------------------------------------------------------- bad DICOM at load
def test_truncated_and_fake_dicom_raise_bad_file(tmp_path):
    raw = Path(_testfile("CT_small.dcm")).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BadFileError) as info:
        LoadMedicalImage()(cut)
    assert info.value.path == str(cut) and info.value.stage == "load"
    assert info.value.reason.startswith("truncated: pixel data has") and "expected 32768" in info.value.reason
    assert info.value.__cause__ is not None

    fake = tmp_path / "fake.dcm"
    fake.write_text("this is not an image")
    with pytest.raises(BadFileError, match="not a DICOM file"):
        LoadMedicalImage()(fake)

    nopix = tmp_path / "nopix.dcm"
    ds = pydicom.dcmread(_testfile("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(nopix)
    with pytest.raises(BadFileError, match="no pixel data"):
        LoadMedicalImage()(nopix)


def test_unsupported_compression_names_syntax_and_fix(tmp_path):
    ds = pydicom.dcmread(_testfile("JPEG2000.dcm"))
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2: no pydicom decoder exists
    path = tmp_path / "video.dcm"
    ds.save_as(path)
    with pytest.raises(BadFileError) as info:
        LoadMedicalImage()(path)
    assert "MPEG2" in info.value.reason and "1.2.840.10008.1.2.4.100" in info.value.reason
    assert "convert" in info.value.reason


def test_verify_suffix(tmp_path):
    reader = DicomSeriesReader()
    plain = tmp_path / "IM0001"
    plain.write_bytes(b"")
    assert reader.verify_suffix(["a.dcm", "b.DICOM", "c.ima", str(plain), str(tmp_path)])
    assert not reader.verify_suffix("a.png") and not reader.verify_suffix("x.nii.gz")
