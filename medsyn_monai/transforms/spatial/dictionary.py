"""Dictionary versions of :mod:`medsyn_monai.transforms.spatial.array`.

Each ``<Name>d`` applies ``<Name>`` to the entries ``keys`` of a data dictionary; aliases ``<Name>D`` and
``<Name>Dict`` are defined as in MONAI.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.transforms.traits import MultiSampleTrait
from monai.utils import InterpolateMode, ensure_tuple_rep

from medsyn_monai.transforms.spatial.array import CenterCropResize, RandCropResize, SliceFilterReport, VolumeToSlices

__all__ = [
    "VolumeToSlicesd",
    "VolumeToSlicesD",
    "VolumeToSlicesDict",
    "CenterCropResized",
    "CenterCropResizeD",
    "CenterCropResizeDict",
    "RandCropResized",
    "RandCropResizeD",
    "RandCropResizeDict",
]


class VolumeToSlicesd(MapTransform, MultiSampleTrait):
    """Dictionary version of :class:`~medsyn_monai.transforms.VolumeToSlices`: one dictionary per slice.

    Returns a list of dictionaries (like MONAI's ``RandCropByPosNegLabeld``; ``monai.transforms.Compose`` applies
    the following transforms to each item and ``list_data_collate`` flattens them). Every selected key is sliced
    at the same indices; the first selected key decides which slices are kept (range and near-empty filtering), so
    put the image before e.g. a label. The other entries are copied by reference into every dictionary. When the
    first key holds a 2D image, ``[dict(data)]`` is returned unchanged.

    Args:
        keys: keys of the entries to slice (all must have the same extent along ``axis``).
        axis: spatial axis to slice along (0, 1, 2 or -1).
        start: first slice (float fraction in ``[0, 1]`` or int index).
        end: end of the range, exclusive (fraction or index).
        step: keep every ``step``-th slice.
        min_foreground_fraction: minimal fraction of foreground pixels (of the first key) to keep a slice.
        foreground_threshold: intensity above which a pixel is foreground (None: volume min + 1% of its range).
        allow_missing_keys: do not raise for missing keys.

    Raises:
        ValueError: as :class:`~medsyn_monai.transforms.VolumeToSlices`, and at call time when the selected keys
            differ in dimensionality or in extent along ``axis``.

    Example:
        >>> import numpy as np
        >>> data = {"image": np.zeros((1, 2, 2, 3)), "label": 7}
        >>> items = VolumeToSlicesd("image")(data)
        >>> len(items), items[2]["image"].shape, items[2]["label"]
        (3, (1, 2, 2), 7)
        >>> VolumeToSlicesd("image", min_foreground_fraction=0.5).foreground_report(data).num_kept  # all zero
        0
    """

    backend = VolumeToSlices.backend

    def __init__(
        self,
        keys: KeysCollection,
        axis: int = -1,
        start: float | int = 0.0,
        end: float | int = 1.0,
        step: int = 1,
        min_foreground_fraction: float = 0.0,
        foreground_threshold: float | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.slicer = VolumeToSlices(
            axis=axis,
            start=start,
            end=end,
            step=step,
            min_foreground_fraction=min_foreground_fraction,
            foreground_threshold=foreground_threshold,
        )

    def foreground_report(self, data: Mapping[Hashable, Any]) -> SliceFilterReport | None:
        """What the near-empty slice filter does to the first selected key of ``data`` (the one that decides).

        Args:
            data: the data dictionary.

        Returns:
            The report of :meth:`~medsyn_monai.transforms.VolumeToSlices.foreground_report`, or ``None`` when no
            key is present or the first one holds a 2D image (never filtered).
        """
        keys = list(self.key_iterator(dict(data)))
        if not keys or data[keys[0]].ndim != 4:
            return None
        return self.slicer.foreground_report(data[keys[0]])

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        """Slice the selected entries of ``data``.

        Args:
            data: the data dictionary.

        Returns:
            One dictionary per kept slice.
        """
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return [d]
        first = d[keys[0]]
        VolumeToSlices._check_volume(first)
        axis = self.slicer.axis + 1
        for key in keys[1:]:
            if d[key].ndim != first.ndim or (first.ndim == 4 and d[key].shape[axis] != first.shape[axis]):
                raise ValueError(
                    f"All keys must slice consistently: {keys[0]!r} has shape {tuple(first.shape)}, "
                    f"{key!r} has shape {tuple(d[key].shape)} (axis {self.slicer.axis})."
                )
        if first.ndim == 3:
            return [d]
        out = []
        for index in self.slicer.select_indices(first):
            item = dict(d)
            for key in keys:
                item[key] = self.slicer.get_slice(d[key], index)
            out.append(item)
        return out


class CenterCropResized(MapTransform):
    """Dictionary version of :class:`~medsyn_monai.transforms.CenterCropResize`.

    Args:
        keys: keys of the entries to crop and resize.
        spatial_size: output spatial size; an int gives the same size on every spatial axis.
        mode: interpolation mode, or one per key (e.g. ``("area", "nearest")`` for image and label).
        align_corners: as in :func:`torch.nn.functional.interpolate`, or one per key.
        anti_aliasing: Gaussian smoothing before downsampling.
        anti_aliasing_sigma: sigma of that smoothing.
        dtype: data type used for resampling and output.
        allow_missing_keys: do not raise for missing keys.

    Example:
        >>> import numpy as np
        >>> CenterCropResized("image", 8)({"image": np.ones((1, 10, 20))})["image"].shape
        (1, 8, 8)
    """

    backend = CenterCropResize.backend

    def __init__(
        self,
        keys: KeysCollection,
        spatial_size: Sequence[int] | int,
        mode: Sequence[str] | str = InterpolateMode.AREA,
        align_corners: Sequence[bool | None] | bool | None = None,
        anti_aliasing: bool = False,
        anti_aliasing_sigma: Sequence[float] | float | None = None,
        dtype: DtypeLike | torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        self.align_corners = ensure_tuple_rep(align_corners, len(self.keys))
        self.resizer = CenterCropResize(
            spatial_size=spatial_size,
            mode=self.mode[0],
            anti_aliasing=anti_aliasing,
            anti_aliasing_sigma=anti_aliasing_sigma,
            dtype=dtype,
        )
        for m in self.mode:  # validate every mode now
            CenterCropResize(spatial_size=1, mode=m)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Crop and resize the selected entries.

        Args:
            data: the data dictionary.

        Returns:
            A new dictionary with the selected entries cropped and resized.
        """
        d = dict(data)
        for key, mode, align_corners in self.key_iterator(d, self.mode, self.align_corners):
            d[key] = self.resizer(d[key], mode=mode, align_corners=align_corners)
        return d


class RandCropResized(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`~medsyn_monai.transforms.RandCropResize`; all keys share the same crop.

    The selected entries must have the same spatial shape (the first one draws the crop).

    Args:
        keys: keys of the entries to crop and resize.
        spatial_size: output spatial size; an int gives the same size on every spatial axis.
        scale_range: ``(low, high)`` range of the crop scale, ``0 < low <= high <= 1``.
        prob: probability of a random crop (else the centred crop of ``CenterCropResize``).
        mode: interpolation mode, or one per key.
        align_corners: as in :func:`torch.nn.functional.interpolate`, or one per key.
        anti_aliasing: Gaussian smoothing before downsampling.
        anti_aliasing_sigma: sigma of that smoothing.
        dtype: data type used for resampling and output.
        allow_missing_keys: do not raise for missing keys.

    Example:
        >>> import numpy as np
        >>> t = RandCropResized(["a", "b"], 4, prob=1.0).set_random_state(1)
        >>> out = t({"a": np.ones((1, 9, 7)), "b": np.zeros((1, 9, 7))})
        >>> out["a"].shape, out["b"].shape
        ((1, 4, 4), (1, 4, 4))
    """

    backend = RandCropResize.backend

    def __init__(
        self,
        keys: KeysCollection,
        spatial_size: Sequence[int] | int,
        scale_range: Sequence[float] = (0.8, 1.0),
        prob: float = 0.1,
        mode: Sequence[str] | str = InterpolateMode.AREA,
        align_corners: Sequence[bool | None] | bool | None = None,
        anti_aliasing: bool = False,
        anti_aliasing_sigma: Sequence[float] | float | None = None,
        dtype: DtypeLike | torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        self.align_corners = ensure_tuple_rep(align_corners, len(self.keys))
        self.cropper = RandCropResize(
            spatial_size=spatial_size,
            scale_range=scale_range,
            prob=1.0,
            mode=self.mode[0],
            anti_aliasing=anti_aliasing,
            anti_aliasing_sigma=anti_aliasing_sigma,
            dtype=dtype,
        )
        for m in self.mode:  # validate every mode now
            CenterCropResize(spatial_size=1, mode=m)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandCropResized:
        """Seed this transform and its array transform (see :meth:`monai.transforms.Randomizable.set_random_state`)."""
        super().set_random_state(seed, state)
        self.cropper.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Crop (one shared crop) and resize the selected entries.

        Args:
            data: the data dictionary.

        Returns:
            A new dictionary with the selected entries cropped and resized.

        Raises:
            ValueError: when the selected entries differ in spatial shape.
        """
        d = dict(data)
        self.randomize(None)
        first_key = self.first_key(d)
        if first_key == ():
            return d
        shape = tuple(d[first_key].shape[1:])
        for key in self.key_iterator(d):
            if tuple(d[key].shape[1:]) != shape:
                raise ValueError(
                    f"RandCropResized needs one spatial shape for all keys: {first_key!r} has {shape}, "
                    f"{key!r} has {tuple(d[key].shape[1:])}."
                )
        if self._do_transform:
            self.cropper.randomize(shape)
        for key, mode, align_corners in self.key_iterator(d, self.mode, self.align_corners):
            if self._do_transform:
                d[key] = self.cropper(d[key], randomize=False, mode=mode, align_corners=align_corners)
            else:
                d[key] = self.cropper.center(d[key], mode=mode, align_corners=align_corners)
        return d


VolumeToSlicesD = VolumeToSlicesDict = VolumeToSlicesd
CenterCropResizeD = CenterCropResizeDict = CenterCropResized
RandCropResizeD = RandCropResizeDict = RandCropResized
