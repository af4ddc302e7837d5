"""Spatial transforms (array versions): VolumeToSlices, CenterCropResize, RandCropResize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Resize

from medsyn_monai.transforms import (
    CenterCropResize,
    RandCropResize,
    VolumeToSlices,
)


def _indexed_volume(shape=(1, 3, 4, 10)) -> np.ndarray:
    """Volume whose value is the index along the last axis."""
    vol = np.zeros(shape, dtype=np.float32)
    vol[...] = np.arange(shape[-1], dtype=np.float32)
    return vol


# ------------------------------------------------------------------------------------------------------ VolumeToSlices
def test_volume_to_slices_default_all_slices_in_order():
    vol = _indexed_volume()
    slices = VolumeToSlices()(vol)
    assert len(slices) == 10
    for k, s in enumerate(slices):
        assert isinstance(s, np.ndarray) and s.shape == (1, 3, 4)
        np.testing.assert_array_equal(s, np.full((1, 3, 4), k))


@pytest.mark.parametrize(
    ("start", "end", "step", "expected"),
    [
        (0.2, 0.8, 1, [2, 3, 4, 5, 6, 7]),
        (0.25, 0.75, 1, [3, 4, 5, 6, 7]),
        (0.0, 0.5, 2, [0, 2, 4]),
        (2, 5, 1, [2, 3, 4]),
        (0, 10, 3, [0, 3, 6, 9]),
        (0, -2, 1, [0, 1, 2, 3, 4, 5, 6, 7]),
        (1, 0.5, 1, [1, 2, 3, 4]),
        (0.9, 1.0, 1, [9]),
        (20, 30, 1, []),
    ],
)
def test_volume_to_slices_ranges(start, end, step, expected):
    vol = _indexed_volume()
    t = VolumeToSlices(start=start, end=end, step=step)
    assert t.select_indices(vol) == expected
    slices = t(vol)
    assert [int(s[0, 0, 0]) for s in slices] == expected


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_volume_to_slices_axis(axis):
    vol = np.random.default_rng(0).random((2, 3, 4, 5)).astype(np.float32)
    spatial = axis % 3
    slices = VolumeToSlices(axis=axis)(vol)
    assert len(slices) == vol.shape[spatial + 1]
    for k, s in enumerate(slices):
        np.testing.assert_array_equal(s, np.take(vol, k, axis=spatial + 1))
        assert s.shape == (2,) + tuple(np.delete(vol.shape[1:], spatial))


def test_volume_to_slices_skips_empty_slices():
    vol = np.zeros((1, 8, 8, 6), dtype=np.float32)
    vol[0, 2:6, 2:6, 1] = 1.0  # 16 / 64 = 25 %
    vol[0, 0:8, 0:4, 4] = 0.5  # 50 %
    vol[0, 3, 3, 2] = 1.0  # one pixel, 1/64
    assert VolumeToSlices(min_foreground_fraction=0.1).select_indices(vol) == [1, 4]
    assert VolumeToSlices(min_foreground_fraction=0.01).select_indices(vol) == [1, 2, 4]
    assert VolumeToSlices(min_foreground_fraction=0.3).select_indices(vol) == [4]
    assert VolumeToSlices(min_foreground_fraction=0.1, foreground_threshold=0.6).select_indices(vol) == [1]
    assert VolumeToSlices(min_foreground_fraction=0.1, start=2).select_indices(vol) == [4]
    assert len(VolumeToSlices()(vol)) == 6  # min_foreground_fraction=0 keeps everything
    # multi-channel: a pixel is foreground when any channel is
    two = np.concatenate([np.zeros_like(vol), vol])
    assert VolumeToSlices(min_foreground_fraction=0.1).select_indices(two) == [1, 4]


def test_volume_to_slices_hu_threshold():
    vol = np.full((1, 10, 10, 5), -1024.0, dtype=np.float32)  # padding
    vol[0, 1:9, 1:9, :] = -1000.0  # air
    vol[0, 3:7, 3:7, 2:4] = 40.0  # body in slices 2 and 3 (16 %)
    assert VolumeToSlices(min_foreground_fraction=0.1, foreground_threshold=-500).select_indices(vol) == [2, 3]
    # the default threshold (volume min + 1 % of the range) counts air as foreground here
    assert VolumeToSlices(min_foreground_fraction=0.1).select_indices(vol) == [0, 1, 2, 3, 4]


def test_volume_to_slices_foreground_report_explains_the_filter():
    vol = np.zeros((1, 8, 8, 6), dtype=np.float32)
    vol[0, 2:6, 2:6, 1] = 1.0  # 16 / 64 = 25 %
    vol[0, 0:8, 0:4, 4] = 0.5  # 50 %
    t = VolumeToSlices(min_foreground_fraction=0.6, foreground_threshold=0.2)
    assert t.foreground_fractions(vol) == [0.0, 0.25, 0.0, 0.0, 0.5, 0.0] and t.threshold_of(vol) == 0.2
    report = t.foreground_report(vol)
    assert (report.threshold, report.threshold_given, report.min_fraction) == (0.2, True, 0.6)
    assert (report.num_slices, report.num_kept, report.max_fraction, report.max_index) == (6, 0, 0.5, 4)
    assert t(vol) == []
    # automatic threshold (min + 1 % of the range); the range limits where the best slice is searched
    report = VolumeToSlices(min_foreground_fraction=0.3, end=3).foreground_report(vol)
    assert report.threshold == pytest.approx(0.01) and not report.threshold_given
    assert (report.num_slices, report.num_kept, report.max_fraction, report.max_index) == (3, 0, 0.25, 1)
    report = VolumeToSlices(min_foreground_fraction=0.2, start=6).foreground_report(vol)  # empty range
    assert (report.num_slices, report.max_fraction, report.max_index) == (0, 0.0, None)
    with pytest.raises(ValueError, match="3D volume"):
        t.foreground_fractions(vol[..., 0])


def test_volume_to_slices_metatensor_meta_and_affine():
    affine = torch.tensor(
        [[2.0, 0.0, 0.0, 10.0], [0.0, 3.0, 0.0, 20.0], [0.0, 0.0, 4.0, 30.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64
    )
    vol = MetaTensor(
        torch.arange(60, dtype=torch.float32).reshape(1, 3, 4, 5),
        affine=affine,
        meta={"filename_or_obj": "ct.nii.gz", "source_format": "nifti"},
    )
    slices = VolumeToSlices(axis=-1, start=1, end=4, step=2)(vol)
    assert [s.meta["slice_index"] for s in slices] == [1, 3]
    assert all(s.meta["slice_axis"] == 2 for s in slices)
    s = slices[1]
    assert isinstance(s, MetaTensor) and s.shape == (1, 3, 4)
    assert s.meta["filename_or_obj"] == "ct.nii.gz" and s.meta["source_format"] == "nifti"
    np.testing.assert_array_equal(s.numpy(), vol.numpy()[..., 3])
    np.testing.assert_allclose(s.affine[:3, 3].numpy(), [10.0, 20.0, 42.0])
    assert "slice_index" not in vol.meta  # the volume's meta is untouched
    # axis 0: the in-plane axes become the first two affine columns and world positions are preserved
    s0 = VolumeToSlices(axis=0)(vol)[2]
    assert s0.meta["slice_axis"] == 0 and s0.shape == (1, 4, 5)
    for i, j in [(0, 0), (3, 4), (1, 2)]:
        world_slice = s0.affine.numpy() @ np.array([i, j, 0.0, 1.0])
        world_vol = affine.numpy() @ np.array([2, i, j, 1.0])
        np.testing.assert_allclose(world_slice, world_vol)
        assert s0[0, i, j] == vol[0, 2, i, j]


def test_volume_to_slices_2d_tensors_and_errors():
    img2d = torch.rand(1, 4, 4)
    out = VolumeToSlices()(img2d)
    assert len(out) == 1 and out[0] is img2d
    out_t = VolumeToSlices(start=0, end=2)(torch.rand(1, 2, 2, 3))
    assert len(out_t) == 2 and all(type(s) is torch.Tensor for s in out_t)
    with pytest.raises(ValueError, match="channel-first"):
        VolumeToSlices()(np.zeros((1, 2, 2, 2, 2)))
    bad = [
        {"axis": 3},
        {"axis": -4},
        {"axis": 1.0},
        {"start": 1.5},
        {"end": -0.5},
        {"start": True},
        {"start": 0.6, "end": 0.4},
        {"start": 5, "end": 5},
        {"step": 0},
        {"min_foreground_fraction": 1.5},
        {"foreground_threshold": float("inf")},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            VolumeToSlices(**kwargs)


# ---------------------------------------------------------------------------------------------------- CenterCropResize
def test_center_crop_resize_shapes():
    t = CenterCropResize(8)
    assert t.crop_size((20, 10)) == (10, 10)
    assert t(np.random.rand(1, 20, 10)).shape == (1, 8, 8)
    assert t(np.random.rand(3, 10, 20)).shape == (3, 8, 8)
    assert CenterCropResize(4)(torch.rand(1, 12, 8, 10)).shape == (1, 4, 4, 4)
    assert CenterCropResize(4).crop_size((12, 8, 10)) == (8, 8, 8)
    rect = CenterCropResize((8, 4))
    assert rect.crop_size((20, 20)) == (20, 10)  # keeps the target aspect ratio
    assert rect(np.random.rand(1, 20, 20)).shape == (1, 8, 4)


def test_center_crop_resize_centred_pattern_stays_centred():
    img = np.zeros((1, 20, 12), dtype=np.float32)
    img[0, 8:12, 4:8] = 1.0  # centred 4x4 block
    out = CenterCropResize(6)(img)
    expected = np.zeros((1, 6, 6), dtype=np.float32)
    expected[0, 2:4, 2:4] = 1.0
    np.testing.assert_allclose(out, expected, atol=1e-6)
    out_lin = CenterCropResize(6, mode="bilinear")(img)
    np.testing.assert_allclose(out_lin, out_lin[:, ::-1, ::-1], atol=1e-6)  # symmetric about the centre
    assert out_lin[0, 2:4, 2:4].min() > out_lin[0, 0, 0]


@pytest.mark.parametrize("mode", ["area", "bilinear", "nearest", "trilinear"])
def test_center_crop_resize_constant_image(mode):
    out2d = CenterCropResize(5, mode=mode)(np.full((1, 13, 9), 3.5, dtype=np.float32))
    np.testing.assert_allclose(out2d, np.full((1, 5, 5), 3.5), rtol=1e-6)
    out3d = CenterCropResize(3, mode=mode)(np.full((2, 7, 6, 9), -2.0, dtype=np.float32))
    np.testing.assert_allclose(out3d, np.full((2, 3, 3, 3), -2.0), rtol=1e-6)


def test_center_crop_resize_types_meta_and_errors():
    img = MetaTensor(torch.rand(1, 10, 6), meta={"filename_or_obj": "a.png"})
    out = CenterCropResize(3)(img)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "a.png"
    assert len(out.applied_operations) == 2  # crop and resize are traced
    assert type(CenterCropResize(3)(torch.rand(1, 10, 6))) is torch.Tensor
    for kwargs in ({"spatial_size": 0}, {"spatial_size": (4, 0)}, {"spatial_size": 4, "mode": "cubic"}):
        with pytest.raises(ValueError):
            CenterCropResize(**kwargs)
    with pytest.raises(ValueError, match="3D"):
        CenterCropResize((4, 4))(np.zeros((1, 4, 4, 4)))


# ------------------------------------------------------------------------------------------------------ RandCropResize
def test_rand_crop_resize_reproducible_and_shape():
    img = np.random.default_rng(0).random((1, 30, 20)).astype(np.float32)
    a = RandCropResize(8, scale_range=(0.5, 0.9), prob=1.0).set_random_state(123)
    b = RandCropResize(8, scale_range=(0.5, 0.9), prob=1.0).set_random_state(123)
    rois = set()
    for _ in range(5):
        out_a, out_b = a(img), b(img)
        assert out_a.shape == (1, 8, 8)
        np.testing.assert_array_equal(out_a, out_b)
        start, end = a.roi
        size = np.subtract(end, start)
        assert size[0] == size[1] and 10 <= size[0] <= 18  # square, 0.5..0.9 of the smallest side (20)
        assert all(s >= 0 for s in start) and end[0] <= 30 and end[1] <= 20
        expected = Resize((8, 8), mode="area")(img[:, start[0] : end[0], start[1] : end[1]])
        np.testing.assert_allclose(out_a, np.asarray(expected), atol=1e-6)
        rois.add(a.roi)
    assert len(rois) > 1
    other = RandCropResize(8, scale_range=(0.5, 0.9), prob=1.0).set_random_state(7)
    other_rois = set()
    for _ in range(5):
        other(img)
        other_rois.add(other.roi)
    assert other_rois != rois  # another seed gives other crops


def test_rand_crop_resize_prob_zero_equals_center_and_bad_args():
    img = np.random.default_rng(1).random((1, 16, 10, 12)).astype(np.float32)
    t = RandCropResize(5, prob=0.0).set_random_state(0)
    np.testing.assert_array_equal(t(img), CenterCropResize(5)(img))
    for scale_range in [(0.0, 1.0), (0.9, 0.8), (0.5, 1.5)]:
        with pytest.raises(ValueError):
            RandCropResize(5, scale_range=scale_range)
    t1 = RandCropResize(5, prob=1.0)
    t1(img)
    with pytest.raises(ValueError, match="spatial shape"):
        t1(np.zeros((1, 8, 8, 8)), randomize=False)
