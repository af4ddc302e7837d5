"""Spatial transforms (dictionary versions): a list of slice items, per-key modes, one crop shared by every key."""

from __future__ import annotations

import numpy as np
import pytest
from monai.transforms import Compose, Resize

from medsyn_monai.transforms import (
    CenterCropResize,
    CenterCropResized,
    RandCropResized,
    ScaleToRanged,
    VolumeToSlicesd,
    VolumeToSlicesDict,
)


def test_volume_to_slices_dict_list_output():
    vol = np.zeros((1, 4, 4, 6), dtype=np.float32)
    vol[0, :, :, 2:5] = np.arange(2, 5, dtype=np.float32)
    label = np.ones((1, 4, 4, 6), dtype=np.float32) * np.arange(6, dtype=np.float32)  # label has no empty slices
    extra = {"anything": [1, 2]}
    data = {"image": vol, "label": label, "extra": extra}
    items = VolumeToSlicesd(["image", "label"], min_foreground_fraction=0.5)(data)
    assert isinstance(items, list) and len(items) == 3  # the first key (image) decides: slices 2, 3, 4
    for item, k in zip(items, [2, 3, 4], strict=True):
        np.testing.assert_array_equal(item["image"], np.full((1, 4, 4), k))
        np.testing.assert_array_equal(item["label"], np.full((1, 4, 4), k))
        assert item["extra"] is extra
    assert VolumeToSlicesDict is VolumeToSlicesd
    with pytest.raises(ValueError, match="consistently"):
        VolumeToSlicesd(["image", "label"])({"image": vol, "label": label[..., :5]})
    two_d = {"image": np.zeros((1, 4, 4))}
    assert VolumeToSlicesd("image")(two_d) == [two_d]


def test_volume_to_slices_dict_in_compose_maps_over_slices():
    vol = np.tile(np.arange(4, dtype=np.float32), (1, 2, 2, 1)) * 10.0  # value: 10 x the index along the last axis
    pipeline = Compose([VolumeToSlicesd("image", start=1), ScaleToRanged("image", source=(0, 30), b_min=0, b_max=1)])
    items = pipeline({"image": vol})
    assert len(items) == 3
    np.testing.assert_allclose([float(it["image"][0, 0, 0]) for it in items], [1 / 3, 2 / 3, 1.0], atol=1e-6)


def test_center_crop_resize_dict_per_key_modes():
    image = np.zeros((1, 12, 8), dtype=np.float32)
    image[0, 2:10, 0:4] = 1.0
    label = (image > 0).astype(np.float32)
    out = CenterCropResized(["image", "label"], 3, mode=("area", "nearest"))({"image": image, "label": label})
    assert out["image"].shape == out["label"].shape == (1, 3, 3)
    assert set(np.unique(out["label"])) <= {0.0, 1.0}
    with pytest.raises(ValueError):
        CenterCropResized(["image", "label"], 3, mode=("area", "bogus"))


def test_rand_crop_resize_dict_shares_crop():
    img = np.random.default_rng(2).random((1, 24, 18)).astype(np.float32)
    t = RandCropResized(["a", "b"], (6, 6), scale_range=(0.4, 0.8), prob=1.0).set_random_state(5)
    out = t({"a": img, "b": img * 2.0, "meta": "m"})
    assert out["a"].shape == out["b"].shape == (1, 6, 6) and out["meta"] == "m"
    np.testing.assert_allclose(out["b"], 2.0 * out["a"], rtol=1e-5)
    start, end = t.cropper.roi
    expected = Resize((6, 6), mode="area")(img[:, start[0] : end[0], start[1] : end[1]])
    np.testing.assert_allclose(out["a"], np.asarray(expected), atol=1e-6)
    again = RandCropResized(["a", "b"], (6, 6), scale_range=(0.4, 0.8), prob=1.0).set_random_state(5)
    np.testing.assert_array_equal(again({"a": img, "b": img * 2.0})["a"], out["a"])
    off = RandCropResized("a", 6, prob=0.0)({"a": img})
    np.testing.assert_array_equal(off["a"], CenterCropResize(6)(img))
    with pytest.raises(ValueError, match="spatial shape"):
        t({"a": img, "b": img[:, :10]})


def test_volume_to_slices_dict_foreground_report():
    vol = np.zeros((1, 8, 8, 6), dtype=np.float32)
    vol[0, 2:6, 2:6, 1] = 1.0  # 16 / 64 = 25 %
    vol[0, 0:8, 0:4, 4] = 0.5  # 50 %
    # the first key decides; 2D images are never filtered
    report = VolumeToSlicesd("image", min_foreground_fraction=0.3).foreground_report({"image": vol})
    assert (report.num_kept, report.max_index) == (1, 4)
    assert VolumeToSlicesd("image").foreground_report({"image": vol[..., 0]}) is None
