"""LoadMedicalImage(d): NIfTI, PNG, JPEG, TIFF (TiffReader) and arrays, channel-first (C, x, y); load-time bad files
(unreadable, or holding NaN/inf values)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from medsyn_monai.data import BadFileError, LoadMedicalImage, LoadMedicalImaged
from medsyn_monai.data.loader import TiffReader, source_format_of
from medsyn_monai.transforms import InvertMonochrome1, ScaleToRange
from tests.data._helpers import to_xy


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
    np.testing.assert_array_equal(img.numpy(), to_xy(a8).astype(np.float32))

    a16 = (np.arange(12 * 20) * 250).astype(np.uint16).reshape(12, 20)
    a16[3, 4] = 40000
    Image.fromarray(a16).save(tmp_path / "a16.png")
    assert Image.open(tmp_path / "a16.png").mode in ("I;16", "I")
    img = LoadMedicalImage()(tmp_path / "a16.png")
    assert img.meta["bit_depth"] == 16
    assert img[0, 4, 3].item() == 40000.0 and img.max().item() == float(a16.max()) > 255
    np.testing.assert_array_equal(img.numpy(), to_xy(a16).astype(np.float32))

    rgb = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    img = LoadMedicalImage()(tmp_path / "rgb.png")
    np.testing.assert_array_equal(img.numpy(), to_xy(rgb).astype(np.float32))


def test_jpeg_8bit_loads(tmp_path):
    grey = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (16, 1))
    Image.fromarray(grey).save(tmp_path / "g.jpg", quality=95)
    img = LoadMedicalImage()(tmp_path / "g.jpg")
    assert tuple(img.shape) == (1, 32, 16) and img.meta["bit_depth"] == 8 and img.meta["source_format"] == "jpeg"
    assert np.abs(img.numpy() - to_xy(grey)).max() <= 8


def test_truncated_or_missing_png_is_bad_file(tmp_path):
    a = np.random.default_rng(2).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadFileError) as info:
        LoadMedicalImage()(tmp_path / "cut.png")
    assert info.value.path == str(tmp_path / "cut.png") and "PNG" in info.value.reason
    with pytest.raises(BadFileError, match="file not found"):
        LoadMedicalImage()(tmp_path / "missing.png")


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
    assert tuple(tif.shape) == tuple(png.shape) == to_xy(pixels).shape and tif.dtype == png.dtype == torch.float32
    torch.testing.assert_close(tif.as_tensor(), png.as_tensor(), rtol=0, atol=0)
    np.testing.assert_array_equal(tif.numpy(), to_xy(pixels).astype(np.float32))
    torch.testing.assert_close(tif.affine, png.affine)
    np.testing.assert_array_equal(tif.meta["spacing"], png.meta["spacing"])
    assert tif.meta["source_format"] == "tiff" and png.meta["source_format"] == "png"
    assert tif.meta["bit_depth"] == png.meta["bit_depth"] == (16 if pixels.dtype == np.uint16 else 8)
    assert tif.meta["filename_or_obj"] == str(tmp_path / "a.tif") and tif.meta["photometric_interpretation"] is None
    # ScaleToRange(source="auto") scales 16-bit TIFF exactly as 16-bit PNG: [0, 65535] -> [-1, 1]
    scaled_tif, scaled_png = ScaleToRange("auto")(tif), ScaleToRange("auto")(png)
    torch.testing.assert_close(scaled_tif.as_tensor(), scaled_png.as_tensor())
    top = 65535.0 if pixels.dtype == np.uint16 else 255.0
    np.testing.assert_allclose(scaled_tif.numpy(), to_xy(pixels) / top * 2.0 - 1.0, atol=1e-6)


def test_tiff_multipage_16bit_stack_is_a_volume(tmp_path):
    stack = _RNG.integers(0, 65536, (5, 6, 7), dtype=np.uint16)  # 5 pages of 6 rows x 7 columns
    tifffile.imwrite(tmp_path / "stack.tiff", stack, photometric="minisblack")
    img = LoadMedicalImage()(tmp_path / "stack.tiff")
    assert tuple(img.shape) == (1, 7, 6, 5) and img.meta["source_format"] == "tiff" and img.meta["bit_depth"] == 16
    for k in range(5):  # page k is the slice k along the last axis, oriented as a PNG of that page
        np.testing.assert_array_equal(img[..., k].numpy(), to_xy(stack[k]).astype(np.float32))
    assert img.meta["num_pages"] == 5 and img.meta["tiff_axes"] == "QYX"
    half = stack // 2  # at most 32767: "auto" scales by the 16-bit range, not by the image's own maximum
    tifffile.imwrite(tmp_path / "half.tif", half, photometric="minisblack")
    scaled = ScaleToRange("auto")(LoadMedicalImage()(tmp_path / "half.tif"))
    np.testing.assert_allclose(scaled[..., 0].numpy(), to_xy(half[0]) / 65535.0 * 2.0 - 1.0, atol=1e-6)
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
    np.testing.assert_array_equal(img[..., 2].numpy(), to_xy(rgb[2]).astype(np.float32))


def test_tiff_what_pillow_gets_wrong_and_variants(tmp_path):
    # 16-bit RGB: Pillow reduces it to 8 bits, tifffile keeps the values
    rgb16 = _RNG.integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16, photometric="rgb")
    assert np.asarray(Image.open(tmp_path / "rgb16.tif")).dtype == np.uint8
    img = LoadMedicalImage()(tmp_path / "rgb16.tif")
    np.testing.assert_array_equal(img.numpy(), to_xy(rgb16).astype(np.float32))
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
    np.testing.assert_array_equal(LoadMedicalImage()(tmp_path / "lzw.tif").numpy(), to_xy(grey).astype(np.float32))
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


# ----------------------------------------------------------------------------------------------- NaN / inf values
def _with_nan_and_inf(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """Random finite values of ``shape`` with two NaN and three infinite values (one of them -inf)."""
    arr = np.random.default_rng(4).normal(size=shape).astype(dtype)
    flat = arr.reshape(-1)
    flat[[0, 5]] = np.nan
    flat[[1, 7, -1]] = [np.inf, -np.inf, np.inf]
    return arr


def test_nan_or_inf_files_are_bad_files(tmp_path):
    vol = _with_nan_and_inf((6, 5, 4))
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "v.nii.gz")
    tifffile.imwrite(tmp_path / "f.tif", _with_nan_and_inf((8, 10)), photometric="minisblack")
    nib.save(nib.Nifti1Image(np.full((4, 4), np.nan, np.float64), np.eye(4)), tmp_path / "all_nan.nii")
    expected = {
        "v.nii.gz": "2 NaN and 3 infinite value(s) among 120",
        "f.tif": "2 NaN and 3 infinite value(s) among 80",
        "all_nan.nii": "16 NaN and 0 infinite value(s) among 16",
    }
    for name, counts in expected.items():
        with pytest.raises(BadFileError) as info:
            LoadMedicalImage()(tmp_path / name)
        assert info.value.path == str(tmp_path / name) and info.value.stage == "load"
        assert info.value.reason == f"{counts}: an image must hold finite numbers (fix or remove the file)"
    nib.save(nib.Nifti1Image(np.array([[0.0, np.nan]], np.float32), np.eye(4)), tmp_path / "one.nii")
    with pytest.raises(BadFileError, match="1 NaN and 0 infinite"):  # the dictionary version too
        LoadMedicalImaged("image")({"image": str(tmp_path / "one.nii")})
    finite = np.nan_to_num(vol, nan=0.0, posinf=1.0, neginf=-1.0)
    nib.save(nib.Nifti1Image(finite, np.eye(4)), tmp_path / "ok.nii.gz")
    np.testing.assert_array_equal(LoadMedicalImage()(tmp_path / "ok.nii.gz")[0].numpy(), finite)


def test_nan_or_inf_arrays_are_bad_files():
    load = LoadMedicalImage()
    with pytest.raises(BadFileError) as info:
        load(_with_nan_and_inf((3, 4)), name="data.npz:train_images[3]")
    assert info.value.path == "data.npz:train_images[3]" and info.value.stage == "load"
    assert info.value.reason.startswith("2 NaN and 3 infinite value(s) among 12:")
    with pytest.raises(BadFileError, match=r"^<array>: 0 NaN and 1 infinite value\(s\) among 4"):
        load(torch.tensor([[1.0, float("-inf")], [0.0, 2.0]]))
    assert load(np.array([[1.0, 1e30]], np.float32)).max().item() == float(np.float32(1e30))  # large but finite
    assert tuple(load(np.full((2, 2), 255, np.uint8)).shape) == (1, 2, 2)
