"""Readers: DICOM (compressed syntaxes, HU, series order), NIfTI, PNG, JPEG, TIFF, arrays; load-time bad files."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
import torch
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import UID, generate_uid

from medsyn_monai.data import BadFileError, DicomSeriesReader, LoadMedicalImage, LoadMedicalImaged
from medsyn_monai.data.loader import TiffReader, source_format_of
from medsyn_monai.transforms import InvertMonochrome1, ScaleToRange

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _testfile(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not available")
    return path


def _pixels(name: str) -> np.ndarray:
    return pydicom.dcmread(_testfile(name)).pixel_array


def _xy(arr: np.ndarray) -> np.ndarray:
    """(rows, cols[, 3]) -> MONAI's channel-first (C, x, y)."""
    return arr.T[None] if arr.ndim == 2 else np.transpose(arr, (2, 1, 0))


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
    np.testing.assert_array_equal(img.numpy(), _xy(raw * slope + intercept).astype(np.float32))
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
    np.testing.assert_array_equal(img.numpy(), _xy(_pixels(reference)).astype(np.float32))


def test_jpeg2000_close_to_reference():
    img = LoadMedicalImage()(_testfile("JPEG2000.dcm"))
    assert tuple(img.shape) == (1, 256, 1024)
    np.testing.assert_array_equal(img.numpy(), _xy(_pixels("JPEG2000.dcm")).astype(np.float32))
    # the same image in JPEG extended (12 bit): lossy codecs, so equal within tolerance
    other = LoadMedicalImage()(_testfile("JPGExtended.dcm")).numpy().astype(np.float64)
    diff = np.abs(img.numpy() - other)
    assert diff.mean() < 6.0
    assert np.corrcoef(img.numpy().ravel(), other.ravel())[0, 1] > 0.95


def test_jpeg_extended_12bit():
    img = LoadMedicalImage()(_testfile("JPGExtended.dcm"))
    assert img.meta["bit_depth"] == 12
    np.testing.assert_array_equal(img.numpy(), _xy(_pixels("JPGExtended.dcm")).astype(np.float32))
    assert 0 <= img.min().item() and img.max().item() < 4096


def test_jpeg_ls_near_lossless_16bit():
    img = LoadMedicalImage()(_testfile("JPEGLSNearLossless_16.dcm"))
    assert tuple(img.shape) == (1, 10, 50)
    np.testing.assert_array_equal(img.numpy(), _xy(_pixels("JPEGLSNearLossless_16.dcm")).astype(np.float32))
    assert img.max().item() > 255  # 16-bit values kept


def test_jpeg_baseline_rgb_close_to_rle_reference():
    img = LoadMedicalImage()(_testfile("SC_rgb_jpeg_dcmtk.dcm"))
    assert tuple(img.shape) == (3, 100, 100) and img.meta["bit_depth"] == 8
    ref = _xy(_pixels("SC_rgb_rle.dcm").astype(np.float32))  # lossless RLE of the same picture
    diff = np.abs(img.numpy() - ref)
    assert diff.max() <= 10 and diff.mean() < 2


def test_shared_real_ct_slice():
    path = SHARED / "ct" / "dicom_file01.dcm"
    if not path.is_file():
        pytest.skip(f"real CT slice not found at {path} (../shared/data is absent)")
    ds = pydicom.dcmread(path)
    img = LoadMedicalImage()(path)
    assert tuple(img.shape) == (1, 512, 512)
    np.testing.assert_array_equal(img.numpy(), _xy(ds.pixel_array.astype(np.float32) - 1024.0))
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

    with pytest.raises(BadFileError, match="file not found"):
        LoadMedicalImage()(tmp_path / "missing.png")


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


# ----------------------------------------------------------------------------------------------- NIfTI, PNG, JPEG
def test_nifti_2d_and_3d_round_trip(tmp_path):
    vol = np.random.default_rng(0).normal(size=(7, 5, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.diag([0.8, 0.9, 2.5, 1.0])), tmp_path / "v.nii.gz")
    img = LoadMedicalImage()(tmp_path / "v.nii.gz")
    assert tuple(img.shape) == (1, 7, 5, 4) and img.meta["source_format"] == "nifti"
    np.testing.assert_array_equal(img[0].numpy(), vol)
    np.testing.assert_allclose(img.meta["spacing"], [0.8, 0.9, 2.5])
    assert img.meta["bit_depth"] is None and img.meta["modality"] is None

    sl = np.arange(24, dtype=np.int16).reshape(6, 4)
    nib.save(nib.Nifti1Image(sl, np.diag([0.5, 0.7, 1.0, 1.0])), tmp_path / "s.nii")
    img = LoadMedicalImage()(tmp_path / "s.nii")
    assert tuple(img.shape) == (1, 6, 4)
    np.testing.assert_array_equal(img[0].numpy(), sl.astype(np.float32))
    np.testing.assert_allclose(img.meta["spacing"], [0.5, 0.7])


def test_png_8bit_and_16bit_round_trip(tmp_path):
    a8 = (np.arange(12 * 20) % 256).astype(np.uint8).reshape(12, 20)  # 12 rows, 20 columns
    Image.fromarray(a8).save(tmp_path / "a8.png")
    img = LoadMedicalImage()(tmp_path / "a8.png")
    assert tuple(img.shape) == (1, 20, 12) and img.meta["bit_depth"] == 8 and img.meta["source_format"] == "png"
    np.testing.assert_array_equal(img.numpy(), _xy(a8).astype(np.float32))

    a16 = (np.arange(12 * 20) * 250).astype(np.uint16).reshape(12, 20)
    a16[3, 4] = 40000
    Image.fromarray(a16).save(tmp_path / "a16.png")
    assert Image.open(tmp_path / "a16.png").mode in ("I;16", "I")
    img = LoadMedicalImage()(tmp_path / "a16.png")
    assert img.meta["bit_depth"] == 16
    assert img[0, 4, 3].item() == 40000.0 and img.max().item() == float(a16.max()) > 255
    np.testing.assert_array_equal(img.numpy(), _xy(a16).astype(np.float32))

    rgb = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    img = LoadMedicalImage()(tmp_path / "rgb.png")
    np.testing.assert_array_equal(img.numpy(), _xy(rgb).astype(np.float32))


def test_jpeg_8bit_loads(tmp_path):
    grey = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (16, 1))
    Image.fromarray(grey).save(tmp_path / "g.jpg", quality=95)
    img = LoadMedicalImage()(tmp_path / "g.jpg")
    assert tuple(img.shape) == (1, 32, 16) and img.meta["bit_depth"] == 8 and img.meta["source_format"] == "jpeg"
    assert np.abs(img.numpy() - _xy(grey)).max() <= 8


def test_truncated_png_is_bad_file(tmp_path):
    a = np.random.default_rng(2).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadFileError) as info:
        LoadMedicalImage()(tmp_path / "cut.png")
    assert info.value.path == str(tmp_path / "cut.png") and "PNG" in info.value.reason


# ----------------------------------------------------------------------------------------------- TIFF
_RNG = np.random.default_rng(7)
TIFF_CASES = {
    "grey8": _RNG.integers(0, 256, (12, 20), dtype=np.uint8),  # 12 rows, 20 columns
    "rgb8": _RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8),
    "grey16": np.concatenate([_RNG.integers(0, 65536, (11, 20)), [[65535] * 20]]).astype(np.uint16),
}


@pytest.mark.parametrize("name", sorted(TIFF_CASES))
def test_tiff_single_page_loads_exactly_as_png(tmp_path, name):
    pixels = TIFF_CASES[name]
    tifffile.imwrite(tmp_path / "a.tif", pixels, photometric="rgb" if pixels.ndim == 3 else "minisblack")
    Image.fromarray(pixels).save(tmp_path / "a.png")
    tif, png = LoadMedicalImage()(tmp_path / "a.tif"), LoadMedicalImage()(tmp_path / "a.png")
    assert tuple(tif.shape) == tuple(png.shape) == _xy(pixels).shape and tif.dtype == png.dtype == torch.float32
    torch.testing.assert_close(tif.as_tensor(), png.as_tensor(), rtol=0, atol=0)
    np.testing.assert_array_equal(tif.numpy(), _xy(pixels).astype(np.float32))
    torch.testing.assert_close(tif.affine, png.affine)
    np.testing.assert_array_equal(tif.meta["spacing"], png.meta["spacing"])
    assert tif.meta["source_format"] == "tiff" and png.meta["source_format"] == "png"
    assert tif.meta["bit_depth"] == png.meta["bit_depth"] == (16 if pixels.dtype == np.uint16 else 8)
    assert tif.meta["filename_or_obj"] == str(tmp_path / "a.tif") and tif.meta["photometric_interpretation"] is None
    # ScaleToRange(source="auto") scales 16-bit TIFF exactly as 16-bit PNG: [0, 65535] -> [-1, 1]
    scaled_tif, scaled_png = ScaleToRange("auto")(tif), ScaleToRange("auto")(png)
    torch.testing.assert_close(scaled_tif.as_tensor(), scaled_png.as_tensor())
    top = 65535.0 if pixels.dtype == np.uint16 else 255.0
    np.testing.assert_allclose(scaled_tif.numpy(), _xy(pixels) / top * 2.0 - 1.0, atol=1e-6)


def test_tiff_multipage_16bit_stack_is_a_volume(tmp_path):
    stack = _RNG.integers(0, 65536, (5, 6, 7), dtype=np.uint16)  # 5 pages of 6 rows x 7 columns
    tifffile.imwrite(tmp_path / "stack.tiff", stack, photometric="minisblack")
    img = LoadMedicalImage()(tmp_path / "stack.tiff")
    assert tuple(img.shape) == (1, 7, 6, 5) and img.meta["source_format"] == "tiff" and img.meta["bit_depth"] == 16
    for k in range(5):  # page k is the slice k along the last axis, oriented as a PNG of that page
        np.testing.assert_array_equal(img[..., k].numpy(), _xy(stack[k]).astype(np.float32))
    assert img.meta["num_pages"] == 5 and img.meta["tiff_axes"] == "QYX"
    half = stack // 2  # at most 32767: "auto" scales by the 16-bit range, not by the image's own maximum
    tifffile.imwrite(tmp_path / "half.tif", half, photometric="minisblack")
    scaled = ScaleToRange("auto")(LoadMedicalImage()(tmp_path / "half.tif"))
    np.testing.assert_allclose(scaled[..., 0].numpy(), _xy(half[0]) / 65535.0 * 2.0 - 1.0, atol=1e-6)
    assert scaled.max().item() < 0.0
    np.testing.assert_array_equal(img.meta["spacing"], [1.0, 1.0, 1.0])
    # a stack written page by page (by Pillow, no shape metadata) reads the same
    pages = [Image.fromarray(p) for p in stack]
    pages[0].save(tmp_path / "pil.tif", save_all=True, append_images=pages[1:])
    torch.testing.assert_close(LoadMedicalImage()(tmp_path / "pil.tif").as_tensor(), img.as_tensor())
    # RGB stack: (pages, rows, columns, 3) -> (3, columns, rows, pages)
    rgb = _RNG.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb_stack.tif", rgb, photometric="rgb")
    img = LoadMedicalImage()(tmp_path / "rgb_stack.tif")
    assert tuple(img.shape) == (3, 5, 4, 3)
    np.testing.assert_array_equal(img[..., 2].numpy(), _xy(rgb[2]).astype(np.float32))


def test_tiff_what_pillow_gets_wrong_and_variants(tmp_path):
    # 16-bit RGB: Pillow reduces it to 8 bits, tifffile keeps the values
    rgb16 = _RNG.integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16, photometric="rgb")
    assert np.asarray(Image.open(tmp_path / "rgb16.tif")).dtype == np.uint8
    img = LoadMedicalImage()(tmp_path / "rgb16.tif")
    np.testing.assert_array_equal(img.numpy(), _xy(rgb16).astype(np.float32))
    assert img.meta["bit_depth"] == 16
    # alpha is dropped, as for PNG
    rgba = _RNG.integers(0, 256, (4, 6, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    torch.testing.assert_close(
        LoadMedicalImage()(tmp_path / "rgba.tif").as_tensor(), LoadMedicalImage()(tmp_path / "rgba.png").as_tensor()
    )
    # palette: RGB (or grey) as for a palette PNG
    for name, mode in (("pal", "RGB"), ("greypal", "L")):
        pal = Image.fromarray(_RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)).convert(mode).convert("P")
        pal.save(tmp_path / f"{name}.tif")
        pal.save(tmp_path / f"{name}.png")
        tif, png = LoadMedicalImage()(tmp_path / f"{name}.tif"), LoadMedicalImage()(tmp_path / f"{name}.png")
        assert tif.shape[0] == (3 if mode == "RGB" else 1) and tif.meta["bit_depth"] == 8
        torch.testing.assert_close(tif.as_tensor(), png.as_tensor(), rtol=0, atol=0)
    # LZW compression (decoded by imagecodecs), written by Pillow
    grey = TIFF_CASES["grey16"]
    Image.fromarray(grey).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(LoadMedicalImage()(tmp_path / "lzw.tif").numpy(), _xy(grey).astype(np.float32))
    # MINISWHITE is marked MONOCHROME1, so InvertMonochrome1 makes bright mean high values
    tifffile.imwrite(tmp_path / "white.tif", np.array([[0, 255]], np.uint8), photometric="miniswhite")
    img = LoadMedicalImage()(tmp_path / "white.tif")
    assert img.meta["photometric_interpretation"] == "MONOCHROME1"
    assert InvertMonochrome1(0.0, 255.0)(img).flatten().tolist() == [255.0, 0.0]
    # bilevel: 0/255, 8-bit
    tifffile.imwrite(tmp_path / "bits.tif", np.array([[True, False]]))
    img = LoadMedicalImage()(tmp_path / "bits.tif")
    assert img.flatten().tolist() == [255.0, 0.0] and img.meta["bit_depth"] == 8
    assert str(source_format_of(tmp_path / "X.TIFF")) == "tiff"
    reader = TiffReader()
    assert reader.verify_suffix(["a.tif", "b.TIFF"]) and not reader.verify_suffix("a.png")


def test_corrupt_tiff_is_bad_file(tmp_path):
    stack = _RNG.integers(0, 65536, (4, 32, 32), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "ok.tif", stack, photometric="minisblack")
    data = (tmp_path / "ok.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) * 3 // 4])
    (tmp_path / "header.tif").write_bytes(data[:12])
    (tmp_path / "fake.tif").write_text("not an image at all")
    expected = {"cut": "truncated: pixel data ends at byte", "header": "corrupted TIFF header", "fake": "not a TIFF"}
    for name, reason in expected.items():
        with pytest.raises(BadFileError) as info:
            LoadMedicalImage()(tmp_path / f"{name}.tif")
        assert info.value.path == str(tmp_path / f"{name}.tif") and info.value.stage == "load"
        assert info.value.reason.startswith(reason), info.value.reason
    tifffile.imwrite(tmp_path / "tz.tif", np.zeros((2, 3, 4, 5), np.uint16), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(BadFileError, match="2 stack axes .*one stack per file"):
        LoadMedicalImage()(tmp_path / "tz.tif")
    tifffile.imwrite(tmp_path / "cmyk.tif", np.zeros((4, 5, 4), np.uint8), photometric="separated")
    with pytest.raises(BadFileError, match="unsupported TIFF photometric interpretation SEPARATED.*grey or RGB TIFF"):
        LoadMedicalImage()(tmp_path / "cmyk.tif")


# ----------------------------------------------------------------------------------------------- arrays
def test_arrays_channel_first_xy():
    load = LoadMedicalImage()
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    img = load(a, name="train_3")
    assert tuple(img.shape) == (1, 3, 2) and img[0, 2, 1].item() == a[1, 2]
    assert img.meta["filename_or_obj"] == "train_3" and img.meta["source_format"] == "npz"
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    img = load(torch.as_tensor(rgb))
    assert tuple(img.shape) == (3, 3, 2) and img[1, 2, 0].item() == rgb[0, 2, 1]
    d = LoadMedicalImaged(["image"])({"image": a, "case_id": "val_0", "label": 1})
    assert d["label"] == 1 and d["image"].meta["filename_or_obj"] == "val_0"
    with pytest.raises(BadFileError):
        load(np.zeros((2, 2, 2, 2, 2)))
