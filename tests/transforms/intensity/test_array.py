"""Intensity transforms (array versions): CTWindow, RandCTWindow, InvertMonochrome1, XRayNormalize, RGBToGrey and
ScaleToRange."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medsyn_monai.transforms import (
    CTWindow,
    InvertMonochrome1,
    RandCTWindow,
    RGBToGrey,
    ScaleToRange,
    XRayNormalize,
)
from medsyn_monai.utils.enums import CTWindowPreset, ScaleSource
from tests.transforms.intensity._helpers import hu_image, mono_image


# ----------------------------------------------------------------------------------------------------------- CTWindow
def test_ct_window_soft_tissue_numbers():
    out = CTWindow("soft_tissue")(hu_image(-1000, -160, 40, 140, 240, 3000))
    np.testing.assert_allclose(out, [[-1.0, -1.0, 0.0, 0.5, 1.0, 1.0]], atol=1e-6)


@pytest.mark.parametrize(
    ("preset", "hu", "expected"),
    [
        ("lung", (-1350, -975, -600, 150, 500), (-1.0, -0.5, 0.0, 1.0, 1.0)),
        ("bone", (-500, 400, 850, 1300), (-1.0, 0.0, 0.5, 1.0)),
        ("brain", (-100, 0, 40, 60, 80), (-1.0, -1.0, 0.0, 0.5, 1.0)),
        (CTWindowPreset.SOFT_TISSUE, (-160, 240), (-1.0, 1.0)),
    ],
)
def test_ct_window_presets(preset, hu, expected):
    np.testing.assert_allclose(CTWindow(preset)(hu_image(*hu)), [expected], atol=1e-6)


def test_ct_window_presets_dict():
    assert CTWindow.PRESETS == {
        "soft_tissue": (40.0, 400.0),
        "lung": (-600.0, 1500.0),
        "bone": (400.0, 1800.0),
        "brain": (40.0, 80.0),
    }
    t = CTWindow(preset="lung")
    assert (t.level, t.width) == (-600.0, 1500.0)


def test_ct_window_custom_level_width_and_range():
    t = CTWindow(level=0, width=100, b_min=0.0, b_max=1.0)
    np.testing.assert_allclose(t(hu_image(-80, -50, 0, 25, 50, 90)), [[0.0, 0.0, 0.5, 0.75, 1.0, 1.0]], atol=1e-6)
    unclipped = CTWindow("soft_tissue", clip=False)(hu_image(-360, 640))
    np.testing.assert_allclose(unclipped, [[-2.0, 3.0]], atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"level": 40},
        {"width": 400},
        {"preset": "soft_tissue", "level": 40},
        {"preset": "soft_tissue", "width": 400, "level": 40},
        {"preset": "liver"},
        {"level": 40, "width": 0},
        {"level": 40, "width": -10},
        {"level": float("nan"), "width": 10},
        {"preset": "lung", "b_min": 1.0, "b_max": -1.0},
    ],
)
def test_ct_window_bad_args(kwargs):
    with pytest.raises(ValueError):
        CTWindow(**kwargs)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_ct_window_rejects_display_images(fmt):
    img = MetaTensor(torch.zeros(1, 4, 4), meta={"source_format": fmt, "filename_or_obj": f"/data/scan_07.{fmt}"})
    with pytest.raises(ValueError, match=r"scan_07\.(png|jpeg).*(HU|Hounsfield)"):
        CTWindow("lung")(img)
    with pytest.raises(ValueError, match="scan_07"):
        RandCTWindow("lung", prob=1.0)(img)
    out = CTWindow("lung", check_hu=False)(img)  # explicitly allowed
    assert out.shape == (1, 4, 4)


def test_ct_window_accepts_dicom_and_nifti_metatensors():
    for fmt in ("dicom", "dicom_series", "nifti"):
        img = MetaTensor(torch.tensor([[-160.0, 240.0]]), meta={"source_format": fmt, "filename_or_obj": "x"})
        out = CTWindow("soft_tissue")(img)
        assert isinstance(out, MetaTensor)
        assert out.meta["source_format"] == fmt
        np.testing.assert_allclose(out.numpy(), [[-1.0, 1.0]], atol=1e-6)


def test_ct_window_container_types():
    t = CTWindow("soft_tissue")
    out_np = t(np.array([[-160, 40, 240]], dtype=np.int16))
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    np.testing.assert_allclose(out_np, [[-1.0, 0.0, 1.0]], atol=1e-6)
    out_t = t(torch.tensor([[-160, 40, 240]], dtype=torch.int16))
    assert type(out_t) is torch.Tensor and out_t.dtype == torch.float32
    np.testing.assert_allclose(out_t.numpy(), [[-1.0, 0.0, 1.0]], atol=1e-6)
    out_m = t(MetaTensor(torch.tensor([[-160.0, 40.0, 240.0]]), meta={"modality": "CT"}))
    assert isinstance(out_m, MetaTensor) and out_m.meta["modality"] == "CT"


# -------------------------------------------------------------------------------------------------------- RandCTWindow
def test_rand_ct_window_reproducible_and_bounded():
    img = np.linspace(-300, 300, 61, dtype=np.float32)[None]
    a = RandCTWindow("soft_tissue", level_jitter=20, width_jitter=50, prob=1.0).set_random_state(42)
    b = RandCTWindow("soft_tissue", level_jitter=20, width_jitter=50, prob=1.0).set_random_state(42)
    levels = []
    for _ in range(30):
        out_a, out_b = a(img), b(img)
        np.testing.assert_array_equal(out_a, out_b)
        assert 20.0 <= a.sampled_level <= 60.0
        assert 350.0 <= a.sampled_width <= 450.0
        expected = CTWindow(level=a.sampled_level, width=a.sampled_width)(img)
        np.testing.assert_allclose(out_a, expected, atol=1e-6)
        levels.append(a.sampled_level)
    assert np.std(levels) > 1.0  # the window really changes


def test_rand_ct_window_prob_zero_is_preset():
    img = np.linspace(-1000, 1000, 41, dtype=np.float32)[None]
    t = RandCTWindow("bone", level_jitter=100, width_jitter=100, prob=0.0).set_random_state(0)
    for _ in range(3):
        np.testing.assert_array_equal(t(img), CTWindow("bone")(img))
    assert (t.sampled_level, t.sampled_width) == (400.0, 1800.0)


def test_rand_ct_window_explicit_centre_and_bad_args():
    t = RandCTWindow(level=0, width=100, width_jitter=10, prob=1.0).set_random_state(3)
    t(hu_image(0.0))
    assert t.sampled_level == 0.0 and 90.0 <= t.sampled_width <= 110.0
    with pytest.raises(ValueError):
        RandCTWindow("lung", level_jitter=-1)
    with pytest.raises(ValueError):
        RandCTWindow("brain", width_jitter=80)  # width could reach 0
    with pytest.raises(ValueError):
        RandCTWindow()


# --------------------------------------------------------------------------------------------------- InvertMonochrome1
def test_invert_monochrome1_values_meta_idempotent():
    img = mono_image([[0.0, 1.0, 4.0], [2.0, 3.0, 4.0]])
    out = InvertMonochrome1()(img)
    np.testing.assert_array_equal(out.numpy(), [[[4.0, 3.0, 0.0], [2.0, 1.0, 0.0]]])
    assert out.meta["photometric_interpretation"] == "MONOCHROME2"
    assert out.meta["filename_or_obj"] == "cr.dcm"
    assert img.meta["photometric_interpretation"] == "MONOCHROME1"  # input meta not edited
    np.testing.assert_array_equal(img.numpy(), [[[0.0, 1.0, 4.0], [2.0, 3.0, 4.0]]])
    twice = InvertMonochrome1()(out)
    assert twice is out
    np.testing.assert_array_equal(twice.numpy(), out.numpy())


def test_invert_monochrome1_fixed_range_and_int_input():
    out = InvertMonochrome1(b_min=0, b_max=10)(mono_image([[0, 1, 4]], dtype=torch.int16))
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), [[[10.0, 9.0, 6.0]]])


def test_invert_monochrome1_pydicom_raw_tag():
    raw = {"vr": "CS", "Value": ["MONOCHROME1"]}
    img = mono_image([[5.0, 7.0]], interpretation=raw, key="00280004")
    out = InvertMonochrome1()(img)
    np.testing.assert_array_equal(out.numpy(), [[[7.0, 5.0]]])
    assert out.meta["00280004"] == {"vr": "CS", "Value": ["MONOCHROME2"]}
    assert out.meta["photometric_interpretation"] == "MONOCHROME2"
    assert img.meta["00280004"]["Value"] == ["MONOCHROME1"]
    assert InvertMonochrome1()(out) is out
    assert InvertMonochrome1.photometric_interpretation({"00280004": "monochrome1 "}) == "MONOCHROME1"


def test_invert_monochrome1_noop_cases():
    mono2 = mono_image([[0.0, 4.0]], interpretation="MONOCHROME2")
    assert InvertMonochrome1()(mono2) is mono2
    plain = np.array([[[0.0, 4.0]]])
    assert InvertMonochrome1()(plain) is plain
    tensor = torch.tensor([[[0.0, 4.0]]])
    assert InvertMonochrome1()(tensor) is tensor
    with pytest.raises(ValueError):
        InvertMonochrome1(b_min=0)
    with pytest.raises(ValueError):
        InvertMonochrome1(b_min=5, b_max=1)


# ------------------------------------------------------------------------------------------------------- XRayNormalize
def test_xray_normalize_percentile_numbers():
    img = np.arange(101, dtype=np.float32).reshape(1, 101)
    out = XRayNormalize(lower=10, upper=90)(img)
    assert isinstance(out, np.ndarray)
    expected = np.clip((img - 10.0) / 80.0 * 2.0 - 1.0, -1.0, 1.0)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out[0, 50] == pytest.approx(0.0, abs=1e-6)
    # defaults: 0.5 and 99.5 percentiles of 0..200 are 1 and 199
    img2 = np.arange(201, dtype=np.float32).reshape(1, 201)
    out2 = XRayNormalize()(img2)
    np.testing.assert_allclose(out2[0, [0, 1, 100, 199, 200]], [-1.0, -1.0, 0.0, 1.0, 1.0], atol=1e-6)
    out3 = XRayNormalize(lower=10, upper=90, b_min=0, b_max=1, clip=False)(img)
    assert out3[0, 0] == pytest.approx(-0.125) and out3[0, 100] == pytest.approx(1.125)


def test_xray_normalize_inverts_monochrome1_first():
    values = np.array([[[0.0, 10.0, 20.0, 30.0, 100.0]]], dtype=np.float32)
    img = MetaTensor(torch.from_numpy(values), meta={"photometric_interpretation": "MONOCHROME1"})
    out = XRayNormalize(lower=0, upper=100)(img)
    assert isinstance(out, MetaTensor) and out.meta["photometric_interpretation"] == "MONOCHROME2"
    # inverted: 100 - x, then min-max to [-1, 1]: the darkest stored value becomes the brightest
    np.testing.assert_allclose(out.numpy(), [[[1.0, 0.8, 0.6, 0.4, -1.0]]], atol=1e-6)
    manual = XRayNormalize(lower=0, upper=100, invert_monochrome1=False)(InvertMonochrome1()(img))
    np.testing.assert_allclose(out.numpy(), manual.numpy(), atol=1e-6)
    not_inverted = XRayNormalize(lower=0, upper=100, invert_monochrome1=False)(img)
    np.testing.assert_allclose(not_inverted.numpy(), [[[-1.0, -0.8, -0.6, -0.4, 1.0]]], atol=1e-6)
    assert not_inverted.meta["photometric_interpretation"] == "MONOCHROME1"


def test_xray_normalize_global_and_bad_args():
    img = np.stack([np.arange(11.0), np.arange(11.0) * 10]).reshape(2, 1, 11)
    global_out = XRayNormalize(lower=0, upper=100)(img)  # channel_wise=False: one range for both channels
    assert global_out[0].max() == pytest.approx(-0.8, abs=1e-6)
    for lower, upper in [(50, 50), (60, 40), (-1, 50), (5, 101)]:
        with pytest.raises(ValueError):
            XRayNormalize(lower=lower, upper=upper)


# ----------------------------------------------------------------------------------------------------------- RGBToGrey
@pytest.mark.parametrize(("channel", "weight"), [(0, 0.299), (1, 0.587), (2, 0.114)])
def test_rgb_to_grey_pure_colours(channel, weight):
    img = np.zeros((3, 2, 3), dtype=np.uint8)
    img[channel] = 255
    out = RGBToGrey()(img)
    assert out.shape == (1, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.full((1, 2, 3), 255 * weight), rtol=1e-6)


def test_rgb_to_grey_white_rgba_and_shapes():
    white = torch.ones(3, 4, 5)
    out = RGBToGrey()(white)
    assert type(out) is torch.Tensor and out.shape == (1, 4, 5)
    np.testing.assert_allclose(out.numpy(), 1.0, rtol=1e-6)
    rgb = np.random.default_rng(0).random((3, 4, 5))
    rgba = np.concatenate([rgb, np.random.default_rng(1).random((1, 4, 5))])
    np.testing.assert_allclose(RGBToGrey()(rgba), RGBToGrey()(rgb))
    np.testing.assert_allclose(RGBToGrey()(rgb)[0], 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
    vol = np.ones((3, 2, 3, 4), dtype=np.float32)
    assert RGBToGrey()(vol).shape == (1, 2, 3, 4)
    grey = np.ones((1, 4, 5))
    assert RGBToGrey()(grey) is grey
    np.testing.assert_allclose(RGBToGrey(weights=(1, 0, 0))(rgb), rgb[:1])


def test_rgb_to_grey_errors():
    for channels in (2, 5):
        with pytest.raises(ValueError, match="channels"):
            RGBToGrey()(np.zeros((channels, 2, 2)))
    with pytest.raises(ValueError):
        RGBToGrey(weights=(0.5, 0.5))


# -------------------------------------------------------------------------------------------------------- ScaleToRange
def test_scale_to_range_bit_depth():
    img8 = MetaTensor(torch.tensor([[0, 51, 255]], dtype=torch.uint8), meta={"bit_depth": 8})
    out8 = ScaleToRange()(img8)
    assert isinstance(out8, MetaTensor) and out8.dtype == torch.float32 and out8.meta["bit_depth"] == 8
    np.testing.assert_allclose(out8.numpy(), [[-1.0, -0.6, 1.0]], atol=1e-6)
    img16 = MetaTensor(torch.tensor([[0.0, 32767.5, 65535.0]]), meta={"bit_depth": 16})
    np.testing.assert_allclose(ScaleToRange("auto")(img16).numpy(), [[-1.0, 0.0, 1.0]], atol=1e-6)
    np.testing.assert_allclose(ScaleToRange(ScaleSource.AUTO, 0, 1)(img16).numpy(), [[0.0, 0.5, 1.0]], atol=1e-6)
    with pytest.raises(ValueError, match="bit_depth"):
        ScaleToRange()(MetaTensor(torch.zeros(1, 2), meta={"bit_depth": 0}))


def test_scale_to_range_auto_without_meta_is_minmax():
    img = np.array([[2.0, 4.0, 6.0]])
    np.testing.assert_allclose(ScaleToRange()(img), [[-1.0, 0.0, 1.0]], atol=1e-6)
    no_bits = MetaTensor(torch.tensor([[10.0, 20.0]]), meta={"bit_depth": None})
    np.testing.assert_allclose(ScaleToRange()(no_bits).numpy(), [[-1.0, 1.0]], atol=1e-6)


def test_scale_to_range_dtype_source():
    out = ScaleToRange("dtype")(np.array([[0, 255, 51]], dtype=np.uint8))
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [[-1.0, 1.0, -0.6]], atol=1e-6)
    out16 = ScaleToRange("dtype")(np.array([[0, 65535, 255]], dtype=np.uint16))
    np.testing.assert_allclose(out16, [[-1.0, 1.0, 2 * 255 / 65535 - 1]], atol=1e-6)
    out_t = ScaleToRange("dtype", b_min=0, b_max=1)(torch.tensor([[0, 255]], dtype=torch.uint8))
    assert type(out_t) is torch.Tensor
    np.testing.assert_allclose(out_t.numpy(), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="integer"):
        ScaleToRange("dtype")(np.zeros((1, 2), dtype=np.float32))


def test_scale_to_range_minmax_and_constant():
    np.testing.assert_allclose(ScaleToRange("minmax")(np.array([[5.0, 7.0, 9.0]])), [[-1.0, 0.0, 1.0]], atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ScaleToRange("minmax")(np.full((1, 3, 3), 42.0))
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out, np.full((1, 3, 3), -1.0))


def test_scale_to_range_fixed_range():
    img = np.array([[-10.0, 50.0, 200.0]])
    np.testing.assert_allclose(ScaleToRange((0, 100), b_min=0, b_max=1)(img), [[0.0, 0.5, 1.0]], atol=1e-6)
    unclipped = ScaleToRange((0, 100), b_min=0, b_max=1, clip=False)(img)
    np.testing.assert_allclose(unclipped, [[-0.1, 0.5, 2.0]], atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [{"source": "bits"}, {"source": (5, 5)}, {"source": (1, 2, 3)}, {"source": (0, 1), "b_min": 1, "b_max": 1}],
)
def test_scale_to_range_bad_args(kwargs):
    with pytest.raises(ValueError):
        ScaleToRange(**kwargs)


@pytest.mark.parametrize("bits, top", [(8, 255.0), (16, 65535.0)])
def test_ct_window_display_preset_scales_exported_grey_levels(bits, top):
    img = MetaTensor(
        torch.tensor([[[0.0, top / 2, top]]]),
        meta={"source_format": "png", "bit_depth": bits, "filename_or_obj": "/data/ct_slice.png"},
    )
    out = CTWindow("display")(img)  # no HU check: display images are the documented input of this preset
    np.testing.assert_allclose(np.asarray(out), [[[-1.0, 0.0, 1.0]]], atol=1e-4)
    assert CTWindow("display").hu_range is None


def test_ct_window_display_preset_bad_args():
    with pytest.raises(ValueError, match="not both"):
        CTWindow("display", level=40, width=400)
    with pytest.raises(ValueError, match="display"):
        RandCTWindow("display", prob=1.0)
    assert CTWindowPreset.DISPLAY.value == "display"
