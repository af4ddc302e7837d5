"""Dictionary versions of :mod:`medsyn_monai.transforms.intensity.array`.

Each ``<Name>d`` applies ``<Name>`` to the entries ``keys`` of a data dictionary; aliases ``<Name>D`` and
``<Name>Dict`` are defined as in MONAI.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform

from medsyn_monai.transforms.intensity.array import (
    CTWindow,
    InvertMonochrome1,
    RandCTWindow,
    RGBToGrey,
    ScaleToRange,
    XRayNormalize,
)
from medsyn_monai.utils.enums import CTWindowPreset, ScaleSource

__all__ = [
    "CTWindowd",
    "CTWindowD",
    "CTWindowDict",
    "RandCTWindowd",
    "RandCTWindowD",
    "RandCTWindowDict",
    "InvertMonochrome1d",
    "InvertMonochrome1D",
    "InvertMonochrome1Dict",
    "XRayNormalized",
    "XRayNormalizeD",
    "XRayNormalizeDict",
    "RGBToGreyd",
    "RGBToGreyD",
    "RGBToGreyDict",
    "ScaleToRanged",
    "ScaleToRangeD",
    "ScaleToRangeDict",
]


class _SimpleMapd(MapTransform):
    """Apply ``self.transform`` to every selected key (shared body of the deterministic dictionary transforms)."""

    transform: Any

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Apply the array transform to each key.

        Args:
            data: the data dictionary.

        Returns:
            A new dictionary with the selected entries transformed.
        """
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class CTWindowd(_SimpleMapd):
    """Dictionary version of :class:`~medsyn_monai.transforms.CTWindow`.

    Args:
        keys: keys of the entries to window.
        preset: window preset name (exclusive with ``level``/``width``).
        level: window level in HU.
        width: window width in HU.
        b_min: output value of the window's lower edge.
        b_max: output value of the window's upper edge.
        clip: clip the output to ``[b_min, b_max]``.
        check_hu: raise for images read from PNG/JPEG files.
        dtype: output data type.
        allow_missing_keys: do not raise for missing keys.

    Example:
        >>> import numpy as np
        >>> CTWindowd("image", preset="lung")({"image": np.array([[-600.0]])})["image"].tolist()
        [[0.0]]
    """

    backend = CTWindow.backend

    def __init__(
        self,
        keys: KeysCollection,
        preset: str | CTWindowPreset | None = None,
        level: float | None = None,
        width: float | None = None,
        b_min: float = -1.0,
        b_max: float = 1.0,
        clip: bool = True,
        check_hu: bool = True,
        dtype: DtypeLike = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = CTWindow(
            preset=preset, level=level, width=width, b_min=b_min, b_max=b_max, clip=clip, check_hu=check_hu, dtype=dtype
        )


class RandCTWindowd(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`~medsyn_monai.transforms.RandCTWindow`; all keys share the same window.

    With probability ``prob`` one jittered window is drawn and applied to every key, otherwise the centre window.

    Args:
        keys: keys of the entries to window.
        preset: centre window preset name (exclusive with ``level``/``width``).
        level: centre window level in HU.
        width: centre window width in HU.
        level_jitter: maximal absolute change of the level in HU.
        width_jitter: maximal absolute change of the width in HU.
        prob: probability of jittering the window.
        b_min: output value of the window's lower edge.
        b_max: output value of the window's upper edge.
        clip: clip the output to ``[b_min, b_max]``.
        check_hu: raise for images read from PNG/JPEG files.
        dtype: output data type.
        allow_missing_keys: do not raise for missing keys.

    Example:
        >>> import numpy as np
        >>> t = RandCTWindowd("image", preset="brain", level_jitter=5, prob=0.0)
        >>> t({"image": np.array([[40.0, 80.0]])})["image"].tolist()
        [[0.0, 1.0]]
    """

    backend = RandCTWindow.backend

    def __init__(
        self,
        keys: KeysCollection,
        preset: str | CTWindowPreset | None = None,
        level: float | None = None,
        width: float | None = None,
        level_jitter: float = 0.0,
        width_jitter: float = 0.0,
        prob: float = 0.1,
        b_min: float = -1.0,
        b_max: float = 1.0,
        clip: bool = True,
        check_hu: bool = True,
        dtype: DtypeLike = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.windower = RandCTWindow(
            preset=preset,
            level=level,
            width=width,
            level_jitter=level_jitter,
            width_jitter=width_jitter,
            prob=1.0,
            b_min=b_min,
            b_max=b_max,
            clip=clip,
            check_hu=check_hu,
            dtype=dtype,
        )

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandCTWindowd:
        """Seed this transform and its array transform (see :meth:`monai.transforms.Randomizable.set_random_state`)."""
        super().set_random_state(seed, state)
        self.windower.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Window every selected key with one (possibly jittered) window.

        Args:
            data: the data dictionary.

        Returns:
            A new dictionary with the selected entries windowed.
        """
        d = dict(data)
        self.randomize(None)
        if self._do_transform:
            self.windower.randomize(None)
        for key in self.key_iterator(d):
            d[key] = self.windower(d[key], randomize=False) if self._do_transform else self.windower.window(d[key])
        return d


class InvertMonochrome1d(_SimpleMapd):
    """Dictionary version of :class:`~medsyn_monai.transforms.InvertMonochrome1`.

    Args:
        keys: keys of the entries to invert (MetaTensors whose meta data says MONOCHROME1).
        b_min: lower end of the inversion range (with ``b_max``), else the image minimum.
        b_max: upper end of the inversion range (with ``b_min``), else the image maximum.
        allow_missing_keys: do not raise for missing keys.

    Example:
        >>> import torch
        >>> from monai.data import MetaTensor
        >>> img = MetaTensor(torch.tensor([[1.0, 3.0]]), meta={"00280004": {"vr": "CS", "Value": ["MONOCHROME1"]}})
        >>> InvertMonochrome1d("image")({"image": img})["image"].tolist()
        [[3.0, 1.0]]
    """

    backend = InvertMonochrome1.backend

    def __init__(
        self,
        keys: KeysCollection,
        b_min: float | None = None,
        b_max: float | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = InvertMonochrome1(b_min=b_min, b_max=b_max)


class XRayNormalized(_SimpleMapd):
    """Dictionary version of :class:`~medsyn_monai.transforms.XRayNormalize`.

    Args:
        keys: keys of the entries to normalise.
        lower: lower percentile.
        upper: upper percentile.
        b_min: output value of the lower percentile.
        b_max: output value of the upper percentile.
        clip: clip the output to ``[b_min, b_max]``.
        invert_monochrome1: invert MONOCHROME1 images first.
        channel_wise: compute the percentiles per channel.
        dtype: output data type.
        allow_missing_keys: do not raise for missing keys.

    Example:
        >>> import numpy as np
        >>> XRayNormalized("image", lower=0, upper=100, b_min=0, b_max=1)({"image": np.array([[2.0, 4.0]])})["image"]
        array([[0., 1.]], dtype=float32)
    """

    backend = XRayNormalize.backend

    def __init__(
        self,
        keys: KeysCollection,
        lower: float = 0.5,
        upper: float = 99.5,
        b_min: float = -1.0,
        b_max: float = 1.0,
        clip: bool = True,
        invert_monochrome1: bool = True,
        channel_wise: bool = False,
        dtype: DtypeLike = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = XRayNormalize(
            lower=lower,
            upper=upper,
            b_min=b_min,
            b_max=b_max,
            clip=clip,
            invert_monochrome1=invert_monochrome1,
            channel_wise=channel_wise,
            dtype=dtype,
        )


class RGBToGreyd(_SimpleMapd):
    """Dictionary version of :class:`~medsyn_monai.transforms.RGBToGrey`.

    Args:
        keys: keys of the entries to convert.
        weights: the three channel weights (R, G, B).
        allow_missing_keys: do not raise for missing keys.

    Example:
        >>> import numpy as np
        >>> RGBToGreyd("image")({"image": np.ones((4, 2, 2))})["image"].shape
        (1, 2, 2)
    """

    backend = RGBToGrey.backend

    def __init__(
        self,
        keys: KeysCollection,
        weights: Sequence[float] = (0.299, 0.587, 0.114),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = RGBToGrey(weights=weights)


class ScaleToRanged(_SimpleMapd):
    """Dictionary version of :class:`~medsyn_monai.transforms.ScaleToRange`.

    Args:
        keys: keys of the entries to scale.
        source: ``"auto"``, ``"minmax"``, ``"dtype"`` or a pair ``(a_min, a_max)``.
        b_min: output value of the source range's lower end.
        b_max: output value of the source range's upper end.
        clip: clip the output to ``[b_min, b_max]``.
        dtype: output data type.
        allow_missing_keys: do not raise for missing keys.

    Example:
        >>> import numpy as np
        >>> ScaleToRanged("image", source="minmax")({"image": np.array([[3.0, 5.0]])})["image"].tolist()
        [[-1.0, 1.0]]
    """

    backend = ScaleToRange.backend

    def __init__(
        self,
        keys: KeysCollection,
        source: str | ScaleSource | Sequence[float] = ScaleSource.AUTO,
        b_min: float = -1.0,
        b_max: float = 1.0,
        clip: bool = True,
        dtype: DtypeLike = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = ScaleToRange(source=source, b_min=b_min, b_max=b_max, clip=clip, dtype=dtype)


CTWindowD = CTWindowDict = CTWindowd
RandCTWindowD = RandCTWindowDict = RandCTWindowd
InvertMonochrome1D = InvertMonochrome1Dict = InvertMonochrome1d
XRayNormalizeD = XRayNormalizeDict = XRayNormalized
RGBToGreyD = RGBToGreyDict = RGBToGreyd
ScaleToRangeD = ScaleToRangeDict = ScaleToRanged
