"""Intensity transforms (dictionary versions): keys, shared random windows, aliases, untouched inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medsyn_monai.transforms import (
    CTWindow,
    CTWindowD,
    CTWindowd,
    CTWindowDict,
    InvertMonochrome1d,
    RandCTWindowd,
    RGBToGreyd,
    ScaleToRanged,
    XRayNormalized,
)
from tests.transforms.intensity._helpers import hu_image, mono_image


def test_ct_window_dict():
    data = {"a": hu_image(-160, 240), "b": hu_image(40), "other": "keep"}
    out = CTWindowd(["a", "b"], preset="soft_tissue")(data)
    np.testing.assert_allclose(out["a"], [[-1.0, 1.0]], atol=1e-6)
    np.testing.assert_allclose(out["b"], [[0.0]], atol=1e-6)
    assert out["other"] == "keep" and data["a"][0, 0] == -160  # input dict untouched
    assert CTWindowD is CTWindowd and CTWindowDict is CTWindowd
    with pytest.raises(KeyError):
        CTWindowd("missing", preset="lung")(data)
    assert "missing" not in CTWindowd("missing", preset="lung", allow_missing_keys=True)(data)


def test_rand_ct_window_dict_shares_window():
    img = np.linspace(-300, 300, 31, dtype=np.float32)[None]
    t = RandCTWindowd(["a", "b"], preset="soft_tissue", level_jitter=30, width_jitter=60, prob=1.0)
    t.set_random_state(7)
    out = t({"a": img, "b": img.copy()})
    np.testing.assert_array_equal(out["a"], out["b"])
    lvl, wid = t.windower.sampled_level, t.windower.sampled_width
    assert (lvl, wid) != (40.0, 400.0)
    np.testing.assert_allclose(out["a"], CTWindow(level=lvl, width=wid)(img), atol=1e-6)
    again = RandCTWindowd(["a", "b"], preset="soft_tissue", level_jitter=30, width_jitter=60, prob=1.0)
    np.testing.assert_array_equal(again.set_random_state(7)({"a": img, "b": img})["a"], out["a"])
    off = RandCTWindowd("a", preset="soft_tissue", level_jitter=30, prob=0.0)({"a": img})
    np.testing.assert_array_equal(off["a"], CTWindow("soft_tissue")(img))


def test_invert_monochrome1_dict():
    data = {"image": mono_image([[1.0, 3.0]]), "label": 1}
    out = InvertMonochrome1d("image")(data)
    np.testing.assert_array_equal(out["image"].numpy(), [[[3.0, 1.0]]])
    assert out["label"] == 1


def test_scale_to_range_dict():
    data = {"image": MetaTensor(torch.tensor([[0.0, 255.0]]), meta={"bit_depth": 8}), "y": 3}
    out = ScaleToRanged("image", b_min=0.0, b_max=1.0)(data)
    np.testing.assert_allclose(out["image"].numpy(), [[0.0, 1.0]])
    assert out["y"] == 3


def test_xray_normalize_dict_channel_wise():
    img = np.stack([np.arange(11.0), np.arange(11.0) * 10]).reshape(2, 1, 11)
    out = XRayNormalized("x", lower=0, upper=100, channel_wise=True)({"x": img})["x"]
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)
    np.testing.assert_allclose(out[0, 0, [0, 5, 10]], [-1.0, 0.0, 1.0], atol=1e-6)


def test_rgb_to_grey_dict_meta():
    img = MetaTensor(torch.ones(3, 2, 2), meta={"photometric_interpretation": "RGB", "filename_or_obj": "a.png"})
    out = RGBToGreyd("image")({"image": img})["image"]
    assert isinstance(out, MetaTensor) and out.shape == (1, 2, 2)
    assert out.meta["photometric_interpretation"] == "MONOCHROME2" and out.meta["filename_or_obj"] == "a.png"
    assert img.meta["photometric_interpretation"] == "RGB"


@pytest.mark.parametrize("bits, top", [(8, 255.0), (16, 65535.0)])
def test_ct_window_dict_display_preset(bits, top):
    meta = {"source_format": "png", "bit_depth": bits, "filename_or_obj": "/data/ct_slice.png"}
    img = MetaTensor(torch.tensor([[[0.0, top / 2, top]]]), meta=meta)
    d = CTWindowd("image", preset="display", b_min=0.0, b_max=1.0)({"image": img})["image"]
    np.testing.assert_allclose(np.asarray(d), [[[0.0, 0.5, 1.0]]], atol=1e-4)
