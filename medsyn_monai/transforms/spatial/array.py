"""Spatial transforms: volume to 2D slices, centre/random square crop then resize (array versions).

Images are channel-first with spatial axes in MONAI's order: ``(C, X, Y[, Z])`` (a PNG or TIFF page of H rows and
W columns loads as ``(C, W, H)``; for DICOM and NIfTI volumes the last spatial axis is the axial one, for a
multi-page TIFF it runs over the pages). Outputs keep the container type of the input (numpy, tensor or MetaTensor).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np
import torch
from monai.config import DtypeLike, NdarrayOrTensor
from monai.data import MetaTensor, get_track_meta
from monai.transforms import CenterSpatialCrop, RandomizableTransform, Resize, SpatialCrop, Transform
from monai.transforms.traits import MultiSampleTrait
from monai.utils import InterpolateMode, TransformBackends, convert_data_type, convert_to_tensor

__all__ = ["VolumeToSlices", "SliceFilterReport", "CenterCropResize", "RandCropResize"]

#: meta data keys added to each slice by :class:`VolumeToSlices`.
SLICE_INDEX_KEY = "slice_index"
SLICE_AXIS_KEY = "slice_axis"

_LINEAR_MODES = {1: InterpolateMode.LINEAR, 2: InterpolateMode.BILINEAR, 3: InterpolateMode.TRILINEAR}


def _like_input(out: NdarrayOrTensor, img: NdarrayOrTensor) -> NdarrayOrTensor:
    """Return ``out`` in the container type of ``img`` (numpy -> numpy, tensor -> tensor, MetaTensor -> as is)."""
    if isinstance(img, MetaTensor):
        return out
    if isinstance(img, torch.Tensor):
        return out.as_tensor() if isinstance(out, MetaTensor) else out
    return convert_data_type(out, output_type=np.ndarray)[0]


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_bound(name: str, value: float | int) -> None:
    if _is_int(value):
        return
    if not isinstance(value, (float, np.floating)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be an int index or a float fraction in [0, 1], got {value!r}.")


@dataclass(frozen=True)
class SliceFilterReport:
    """What the near-empty slice filter of :class:`VolumeToSlices` found in one volume (see ``foreground_report``).

    Attributes:
        threshold: the intensity threshold used (a pixel is foreground when any channel is above it), in the units
            of the volume given to the filter.
        threshold_given: whether ``threshold`` is the ``foreground_threshold`` argument (else it is the automatic
            ``min + 1% * (max - min)`` of the volume).
        min_fraction: the ``min_foreground_fraction`` a slice needs to be kept.
        num_slices: number of slices in the ``start``/``end``/``step`` range.
        num_kept: number of those slices the filter keeps.
        max_fraction: the largest foreground fraction among the slices of the range (0 when there is none).
        max_index: the index of that slice along the axis (``None`` when the range is empty).
    """

    threshold: float
    threshold_given: bool
    min_fraction: float
    num_slices: int
    num_kept: int
    max_fraction: float
    max_index: int | None


class VolumeToSlices(Transform, MultiSampleTrait):
    """Cut a channel-first volume ``(C, X, Y, Z)`` into a list of 2D slices ``(C, ., .)`` along one spatial axis.

    Slice selection:

    - ``axis`` is the spatial axis (0, 1, 2, or -1 for the last one, the axial axis of DICOM/NIfTI volumes in
      MONAI's convention); negative values count from the end (-3..-1).
    - ``start``/``end``: a float in ``[0, 1]`` is a fraction of the extent ``n`` along ``axis`` and keeps the
      slices ``k`` whose relative position ``k / n`` lies in ``[start, end)``; an int is a slice index (end
      exclusive; negative ints count from the end as in Python slicing). Ints and floats can be mixed.
    - ``step`` keeps every ``step``-th slice of that range.
    - Near-empty slices are skipped: a slice is kept when the fraction of its pixels above
      ``foreground_threshold`` (a pixel is foreground when any channel is above it) is at least
      ``min_foreground_fraction``. The default threshold (None) is ``min + 1% * (max - min)`` of the whole
      volume, so pixels at (or within 1% of the range above) the volume's minimum do not count, which suits
      images with a constant zero/dark background. For CT in HU pass e.g. ``-500``, so that air (about -1000 HU)
      does not count even when the volume's minimum is a lower padding value. With the default
      ``min_foreground_fraction=0`` every slice of the range is kept.

    Returns a list of slices, possibly empty (no slice in the range, or all near-empty). A MetaTensor slice keeps a
    copy of the volume's meta data, plus ``"slice_index"`` (index along the axis) and ``"slice_axis"`` (spatial
    axis, 0..2); its 4x4 affine gets the two in-plane axes as its first two columns and the origin moved to the
    slice, so world positions stay exact and MONAI's 2D spatial transforms update it correctly. A 2D input
    ``(C, X, Y)`` is returned as ``[img]``, unchanged.

    Args:
        axis: spatial axis to slice along.
        start: first slice (fraction or index).
        end: end of the range, exclusive (fraction or index).
        step: keep every ``step``-th slice, >= 1.
        min_foreground_fraction: minimal fraction of foreground pixels, in ``[0, 1]``.
        foreground_threshold: intensity above which a pixel is foreground (None: see above).

    Raises:
        ValueError: for an axis outside -3..2, a float bound outside ``[0, 1]``, ``start >= end`` (for two bounds
            of the same kind, non-negative), ``step < 1``, a fraction outside ``[0, 1]``, or at call time an input
            that is neither 2D nor 3D channel-first.

    Example:
        >>> import numpy as np
        >>> vol = np.zeros((1, 2, 2, 4))
        >>> vol[..., 1:3] = 1.0
        >>> slices = VolumeToSlices(axis=-1, min_foreground_fraction=0.5)(vol)
        >>> len(slices), slices[0].shape
        (2, (1, 2, 2))
        >>> VolumeToSlices(axis=2, start=0.5, end=1.0).select_indices(vol)
        [2, 3]
        >>> vol[0, 0, 0, 1:3] = 0.0  # now a quarter of slices 1 and 2 is background
        >>> report = VolumeToSlices(min_foreground_fraction=0.8).foreground_report(vol)
        >>> report.num_kept, report.max_fraction  # why no slice is kept: at best 75% foreground
        (0, 0.75)
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        axis: int = -1,
        start: float | int = 0.0,
        end: float | int = 1.0,
        step: int = 1,
        min_foreground_fraction: float = 0.0,
        foreground_threshold: float | None = None,
    ) -> None:
        if not _is_int(axis) or not -3 <= axis <= 2:
            raise ValueError(f"axis must be a spatial axis index in -3..2 (-1: last, axial), got {axis!r}.")
        _check_bound("start", start)
        _check_bound("end", end)
        same_kind = _is_int(start) == _is_int(end)
        if same_kind and start >= 0 and end >= 0 and start >= end:
            raise ValueError(f"start must be smaller than end, got start={start!r}, end={end!r}.")
        if not _is_int(step) or step < 1:
            raise ValueError(f"step must be an int >= 1, got {step!r}.")
        if not 0.0 <= min_foreground_fraction <= 1.0:
            raise ValueError(f"min_foreground_fraction must be in [0, 1], got {min_foreground_fraction!r}.")
        if foreground_threshold is not None and not math.isfinite(foreground_threshold):
            raise ValueError(f"foreground_threshold must be finite or None, got {foreground_threshold!r}.")
        self.axis = int(axis) % 3
        self.start = start
        self.end = end
        self.step = int(step)
        self.min_foreground_fraction = float(min_foreground_fraction)
        self.foreground_threshold = foreground_threshold

    @staticmethod
    def _check_volume(img: NdarrayOrTensor) -> None:
        if img.ndim not in (3, 4):
            raise ValueError(
                f"VolumeToSlices expects a channel-first 3D volume (C, X, Y, Z) or a 2D image (C, X, Y), "
                f"got shape {tuple(img.shape)}."
            )

    def _bound(self, value: float | int, n: int) -> int:
        if _is_int(value):
            return int(value)
        return math.ceil(float(value) * n - 1e-9)  # first k with k / n >= value (robust to rounding)

    def slice_range(self, n: int) -> range:
        """The slice indices selected by ``start``/``end``/``step`` along an axis of length ``n``.

        Args:
            n: number of slices along the axis.

        Returns:
            The selected indices, before the near-empty slice filtering.
        """
        return range(n)[slice(self._bound(self.start, n), self._bound(self.end, n), self.step)]

    def select_indices(self, img: NdarrayOrTensor) -> list[int]:
        """The indices of the slices of the volume ``img`` that :meth:`__call__` returns.

        Args:
            img: channel-first volume (C, X, Y, Z).

        Returns:
            Selected slice indices along ``self.axis``, in increasing order.

        Raises:
            ValueError: when ``img`` is not a channel-first 3D volume.
        """
        if img.ndim != 4:
            raise ValueError(f"select_indices expects a channel-first 3D volume (C, X, Y, Z), got {tuple(img.shape)}.")
        indices = list(self.slice_range(int(img.shape[self.axis + 1])))
        if self.min_foreground_fraction <= 0.0 or not indices:
            return indices
        fractions = self.foreground_fractions(img)
        return [k for k in indices if fractions[k] >= self.min_foreground_fraction]

    def threshold_of(self, img: NdarrayOrTensor) -> float:
        """The foreground intensity threshold used for the volume ``img``.

        Args:
            img: channel-first volume (C, X, Y, Z).

        Returns:
            ``foreground_threshold`` when given, else ``min + 1% * (max - min)`` of ``img``.
        """
        if self.foreground_threshold is not None:
            return float(self.foreground_threshold)
        vol = convert_to_tensor(img, track_meta=False)
        vmin, vmax = float(vol.min()), float(vol.max())
        return vmin + 0.01 * (vmax - vmin)

    def foreground_fractions(self, img: NdarrayOrTensor) -> list[float]:
        """The fraction of foreground pixels of every slice of the volume ``img`` along ``self.axis``.

        Args:
            img: channel-first volume (C, X, Y, Z).

        Returns:
            One fraction in ``[0, 1]`` per slice index (the whole axis, not only the selected range).

        Raises:
            ValueError: when ``img`` is not a channel-first 3D volume.
        """
        if img.ndim != 4:
            raise ValueError(
                f"foreground_fractions expects a channel-first 3D volume (C, X, Y, Z), got {tuple(img.shape)}."
            )
        vol = convert_to_tensor(img, track_meta=False)
        foreground = (vol > self.threshold_of(img)).any(dim=0)  # (X, Y, Z)
        other = tuple(d for d in range(3) if d != self.axis)
        return [float(f) for f in foreground.to(torch.float64).mean(dim=other)]

    def foreground_report(self, img: NdarrayOrTensor) -> SliceFilterReport:
        """What the near-empty slice filter does to the volume ``img``, e.g. to explain why it keeps no slice.

        Args:
            img: channel-first volume (C, X, Y, Z).

        Returns:
            The threshold, the fraction required, the number of slices in the range and kept, and the largest
            foreground fraction among the slices of the range.

        Raises:
            ValueError: when ``img`` is not a channel-first 3D volume.
        """
        fractions = self.foreground_fractions(img)  # validates img
        in_range = list(self.slice_range(len(fractions)))
        kept = [k for k in in_range if fractions[k] >= self.min_foreground_fraction]
        best = max(in_range, key=lambda k: fractions[k], default=None)
        return SliceFilterReport(
            threshold=self.threshold_of(img),
            threshold_given=self.foreground_threshold is not None,
            min_fraction=self.min_foreground_fraction,
            num_slices=len(in_range),
            num_kept=len(kept),
            max_fraction=0.0 if best is None else fractions[best],
            max_index=best,
        )

    def get_slice(self, img: NdarrayOrTensor, index: int) -> NdarrayOrTensor:
        """Slice ``index`` of the volume ``img`` along ``self.axis``, as a 2D channel-first image.

        Args:
            img: channel-first volume (C, X, Y, Z).
            index: slice index along ``self.axis``.

        Returns:
            The slice (C, ., .), a copy, same container type as ``img``; a MetaTensor gets updated meta data.
        """
        if isinstance(img, np.ndarray):
            return np.take(img, index, axis=self.axis + 1)
        img_t = img.as_tensor() if isinstance(img, MetaTensor) else img
        out = img_t.select(self.axis + 1, index).clone()
        if not isinstance(img, MetaTensor) or not get_track_meta():
            return out
        meta = copy.deepcopy(dict(img.meta))
        affine = img.affine
        if tuple(affine.shape) == (4, 4):
            a = self.axis
            first, second = (d for d in range(3) if d != a)
            new = torch.eye(4, dtype=affine.dtype, device=affine.device)
            new[:3, 0] = affine[:3, first]
            new[:3, 1] = affine[:3, second]
            new[:3, 2] = affine[:3, a]
            new[:3, 3] = affine[:3, 3] + index * affine[:3, a]
            affine = new
        meta["affine"] = affine
        meta[SLICE_INDEX_KEY] = int(index)
        meta[SLICE_AXIS_KEY] = self.axis
        return MetaTensor(out, meta=meta, applied_operations=copy.deepcopy(img.applied_operations))

    def __call__(self, img: NdarrayOrTensor) -> list[NdarrayOrTensor]:
        """Cut ``img`` into slices.

        Args:
            img: channel-first 3D volume (C, X, Y, Z), or 2D image (C, X, Y) (returned as ``[img]``).

        Returns:
            The selected slices in increasing index order.

        Raises:
            ValueError: when ``img`` is neither 2D nor 3D channel-first.
        """
        self._check_volume(img)
        if img.ndim == 3:
            return [img]
        return [self.get_slice(img, k) for k in self.select_indices(img)]


def _target_size(spatial_size: Sequence[int] | int) -> int | tuple[int, ...]:
    if _is_int(spatial_size):
        if spatial_size < 1:
            raise ValueError(f"spatial_size must be >= 1, got {spatial_size!r}.")
        return int(spatial_size)
    sizes = tuple(spatial_size)  # type: ignore[arg-type]  # not an int, so a sequence (checked just below)
    if not sizes or not all(_is_int(s) and s >= 1 for s in sizes):
        raise ValueError(f"spatial_size must be an int or a sequence of ints >= 1, got {spatial_size!r}.")
    return tuple(int(s) for s in sizes)


def _check_mode(mode: str) -> InterpolateMode:
    try:
        return InterpolateMode(mode)
    except ValueError:
        options = ", ".join(m.value for m in InterpolateMode)
        raise ValueError(f"Unknown interpolation mode {mode!r}; choose one of: {options}.") from None


class CenterCropResize(Transform):
    """Centre-crop to the largest region with the aspect ratio of ``spatial_size``, then resize to ``spatial_size``.

    With an int ``spatial_size`` (or equal sizes) the crop is the centred square (cube) whose side is the smallest
    spatial side, so the image is never stretched. Built on :class:`monai.transforms.CenterSpatialCrop` and
    :class:`monai.transforms.Resize`; MetaTensors keep their meta data and record both operations. Works for 2D
    and 3D channel-first inputs. ``mode="area"`` (default) suits downsampling; ``"bilinear"``/``"trilinear"``/
    ``"linear"`` are adapted to the number of spatial dimensions.

    Args:
        spatial_size: output spatial size; an int gives the same size on every spatial axis.
        mode: interpolation mode of :class:`monai.transforms.Resize` (``"area"``, ``"bilinear"``, ``"nearest"``...).
        align_corners: as in :func:`torch.nn.functional.interpolate` (linear and cubic modes only).
        anti_aliasing: Gaussian smoothing before downsampling (as in ``Resize``; not needed with ``"area"``).
        anti_aliasing_sigma: sigma of that smoothing (None: automatic).
        dtype: data type used for resampling and output (float32 by default).

    Raises:
        ValueError: for a ``spatial_size`` that is not positive ints or an unknown mode; at call time for a
            ``spatial_size`` sequence whose length differs from the number of spatial dimensions.

    Example:
        >>> import numpy as np
        >>> CenterCropResize(4)(np.ones((1, 16, 8))).shape
        (1, 4, 4)
        >>> CenterCropResize(4).crop_size((16, 8))
        (8, 8)
    """

    backend = Resize.backend

    def __init__(
        self,
        spatial_size: Sequence[int] | int,
        mode: str = InterpolateMode.AREA,
        align_corners: bool | None = None,
        anti_aliasing: bool = False,
        anti_aliasing_sigma: Sequence[float] | float | None = None,
        dtype: DtypeLike | torch.dtype = torch.float32,
    ) -> None:
        self.spatial_size = _target_size(spatial_size)
        self.mode = _check_mode(mode)
        self.align_corners = align_corners
        self.anti_aliasing = anti_aliasing
        self.anti_aliasing_sigma = anti_aliasing_sigma
        self.dtype = dtype

    def target_size(self, ndim: int) -> tuple[int, ...]:
        """The output spatial size for an input with ``ndim`` spatial dimensions.

        Args:
            ndim: number of spatial dimensions.

        Returns:
            One size per spatial axis.

        Raises:
            ValueError: when a ``spatial_size`` sequence has another length.
        """
        if isinstance(self.spatial_size, int):
            return (self.spatial_size,) * ndim
        if len(self.spatial_size) != ndim:
            raise ValueError(
                f"spatial_size {self.spatial_size} has {len(self.spatial_size)} values for a {ndim}D image."
            )
        return self.spatial_size

    def crop_size(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        """The size of the centred crop: the largest region of ``spatial_shape`` with the target aspect ratio.

        Args:
            spatial_shape: spatial shape of the input.

        Returns:
            The crop size per spatial axis.
        """
        shape = tuple(int(s) for s in spatial_shape)
        target = self.target_size(len(shape))
        scale = min(s / t for s, t in zip(shape, target, strict=True))
        return tuple(min(s, max(1, round(t * scale))) for s, t in zip(shape, target, strict=True))

    def _mode(self, mode: str | None, ndim: int) -> str:
        m = self.mode if mode is None else _check_mode(mode)
        if m in (InterpolateMode.LINEAR, InterpolateMode.BILINEAR, InterpolateMode.TRILINEAR):
            m = _LINEAR_MODES.get(ndim, m)
        return m.value

    def resize(
        self, img: NdarrayOrTensor, mode: str | None = None, align_corners: bool | None = None
    ) -> NdarrayOrTensor:
        """Resize an already cropped ``img`` to the target size.

        Args:
            img: channel-first image.
            mode: interpolation mode overriding ``self.mode``.
            align_corners: overriding ``self.align_corners``.

        Returns:
            The resized image (a tensor or MetaTensor).
        """
        nd = img.ndim - 1
        resizer = Resize(
            spatial_size=self.target_size(nd),
            mode=self._mode(mode, nd),
            align_corners=self.align_corners if align_corners is None else align_corners,
            anti_aliasing=self.anti_aliasing,
            anti_aliasing_sigma=self.anti_aliasing_sigma,
            dtype=self.dtype,
        )
        return resizer(img)  # type: ignore[arg-type]  # MONAI's transforms take arrays too; annotated Tensor

    def __call__(
        self, img: NdarrayOrTensor, mode: str | None = None, align_corners: bool | None = None
    ) -> NdarrayOrTensor:
        """Centre-crop and resize ``img``.

        Args:
            img: channel-first 2D or 3D image.
            mode: interpolation mode overriding ``self.mode``.
            align_corners: overriding ``self.align_corners``.

        Returns:
            The image of spatial shape ``spatial_size``, same container type as ``img``.

        Raises:
            ValueError: for an input that is not 1D-3D channel-first.
        """
        if img.ndim not in (2, 3, 4):
            raise ValueError(f"CenterCropResize expects a channel-first 1D-3D image, got shape {tuple(img.shape)}.")
        cropped = CenterSpatialCrop(roi_size=self.crop_size(img.shape[1:]))(img)  # type: ignore[arg-type]  # as above
        return _like_input(self.resize(cropped, mode=mode, align_corners=align_corners), img)


class RandCropResize(RandomizableTransform):
    """Random crop then resize: a light zoom/translation augmentation beside :class:`CenterCropResize`.

    With probability ``prob`` the crop is the region of :class:`CenterCropResize` (largest region with the
    target aspect ratio; a square of the smallest side for an int ``spatial_size``) scaled on every axis by one
    factor drawn uniformly in ``scale_range``, at a uniformly random position; it is then resized to
    ``spatial_size``. Otherwise the result equals :class:`CenterCropResize`. Random numbers come from ``self.R``.

    Args:
        spatial_size: output spatial size; an int gives the same size on every spatial axis.
        scale_range: ``(low, high)`` range of the crop scale, ``0 < low <= high <= 1``.
        prob: probability of a random crop.
        mode: interpolation mode of :class:`monai.transforms.Resize`.
        align_corners: as in :func:`torch.nn.functional.interpolate`.
        anti_aliasing: Gaussian smoothing before downsampling.
        anti_aliasing_sigma: sigma of that smoothing.
        dtype: data type used for resampling and output.

    Raises:
        ValueError: for an invalid ``scale_range``, ``spatial_size`` or mode.

    Example:
        >>> import numpy as np
        >>> t = RandCropResize(4, scale_range=(0.5, 1.0), prob=1.0).set_random_state(0)
        >>> t(np.random.rand(1, 16, 12)).shape
        (1, 4, 4)
    """

    backend = CenterCropResize.backend

    def __init__(
        self,
        spatial_size: Sequence[int] | int,
        scale_range: Sequence[float] = (0.8, 1.0),
        prob: float = 0.1,
        mode: str = InterpolateMode.AREA,
        align_corners: bool | None = None,
        anti_aliasing: bool = False,
        anti_aliasing_sigma: Sequence[float] | float | None = None,
        dtype: DtypeLike | torch.dtype = torch.float32,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        low, high = (float(v) for v in scale_range)
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"scale_range must satisfy 0 < low <= high <= 1, got {tuple(scale_range)}.")
        self.scale_range = (low, high)
        self.center = CenterCropResize(
            spatial_size=spatial_size,
            mode=mode,
            align_corners=align_corners,
            anti_aliasing=anti_aliasing,
            anti_aliasing_sigma=anti_aliasing_sigma,
            dtype=dtype,
        )
        self._spatial_shape: tuple[int, ...] | None = None
        self._roi_start: tuple[int, ...] = ()
        self._roi_end: tuple[int, ...] = ()

    def randomize(self, spatial_shape: Sequence[int]) -> None:
        """Decide whether to crop randomly and, if so, draw the crop scale and position.

        Args:
            spatial_shape: spatial shape of the image to crop.
        """
        super().randomize(None)
        self._spatial_shape = tuple(int(s) for s in spatial_shape)
        if not self._do_transform:
            return
        base = self.center.crop_size(self._spatial_shape)
        scale = self.R.uniform(*self.scale_range)
        size = tuple(max(1, round(b * scale)) for b in base)
        start = tuple(int(self.R.randint(0, s - c + 1)) for s, c in zip(self._spatial_shape, size, strict=True))
        self._roi_start = start
        self._roi_end = tuple(b + c for b, c in zip(start, size, strict=True))

    @property
    def roi(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(roi_start, roi_end)`` of the last random crop (empty tuples before the first one)."""
        return self._roi_start, self._roi_end

    def __call__(
        self,
        img: NdarrayOrTensor,
        randomize: bool = True,
        mode: str | None = None,
        align_corners: bool | None = None,
    ) -> NdarrayOrTensor:
        """Crop ``img`` (randomly with probability ``prob``, else centred) and resize it.

        Args:
            img: channel-first 2D or 3D image.
            randomize: draw new random parameters first (False reuses the last ones, for the same spatial shape).
            mode: interpolation mode overriding the one given at construction.
            align_corners: overriding the one given at construction.

        Returns:
            The image of spatial shape ``spatial_size``, same container type as ``img``.

        Raises:
            ValueError: with ``randomize=False`` when the last parameters were drawn for another spatial shape.
        """
        if img.ndim not in (2, 3, 4):
            raise ValueError(f"RandCropResize expects a channel-first 1D-3D image, got shape {tuple(img.shape)}.")
        spatial_shape = tuple(int(s) for s in img.shape[1:])
        if randomize:
            self.randomize(spatial_shape)
        if not self._do_transform:
            return self.center(img, mode=mode, align_corners=align_corners)
        if self._spatial_shape != spatial_shape:
            raise ValueError(
                f"The random crop was drawn for spatial shape {self._spatial_shape}, got an image of {spatial_shape}."
            )
        cropped = SpatialCrop(roi_start=self._roi_start, roi_end=self._roi_end)(img)  # type: ignore[arg-type]  # as above
        return _like_input(self.center.resize(cropped, mode=mode, align_corners=align_corners), img)
