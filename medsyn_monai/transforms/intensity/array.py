"""Intensity transforms for CT, X-ray and colour images (array versions).

All transforms take channel-first images (``numpy.ndarray``, ``torch.Tensor`` or
:class:`monai.data.MetaTensor`) and return the same container type: numpy in gives numpy out, a plain tensor gives a
plain tensor, a MetaTensor gives a MetaTensor that keeps (and where said, updates) its meta data. With
``monai.data.set_track_meta(False)`` MetaTensor inputs give plain tensors, as in MONAI.

The transforms read the meta data that the project's loader writes on each MetaTensor: ``"source_format"``,
``"bit_depth"``, ``"photometric_interpretation"`` and ``"filename_or_obj"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from monai.config import DtypeLike, NdarrayOrTensor
from monai.data import MetaTensor, get_track_meta
from monai.transforms import (
    RandomizableTransform,
    ScaleIntensityRange,
    ScaleIntensityRangePercentiles,
    Transform,
)
from monai.utils import TransformBackends, convert_data_type, convert_to_dst_type, convert_to_tensor

from medsyn_monai.utils.enums import CTWindowPreset, ScaleSource, SourceFormat

__all__ = [
    "CTWindow",
    "RandCTWindow",
    "InvertMonochrome1",
    "XRayNormalize",
    "RGBToGrey",
    "ScaleToRange",
]

#: meta data keys written by the project's loader.
SOURCE_FORMAT_KEY = "source_format"
BIT_DEPTH_KEY = "bit_depth"
PHOTOMETRIC_KEY = "photometric_interpretation"
FILENAME_KEY = "filename_or_obj"
#: DICOM tag (0028,0004) Photometric Interpretation, as MONAI's PydicomReader stores it in the meta data.
DICOM_PHOTOMETRIC_TAG = "00280004"


def _like_input(out: NdarrayOrTensor, img: NdarrayOrTensor) -> NdarrayOrTensor:
    """Return ``out`` in the container type of ``img`` (numpy -> numpy, tensor -> tensor, MetaTensor -> as is)."""
    if isinstance(img, MetaTensor):
        return out
    if isinstance(img, torch.Tensor):
        return out.as_tensor() if isinstance(out, MetaTensor) else out
    return convert_data_type(out, output_type=np.ndarray)[0]


def _is_floating(img: NdarrayOrTensor) -> bool:
    if isinstance(img, torch.Tensor):
        return torch.is_floating_point(img)
    return bool(np.issubdtype(np.asarray(img).dtype, np.floating))


def _to_float(img: NdarrayOrTensor) -> NdarrayOrTensor:
    """Integer (and bool) inputs as float32, floating inputs unchanged (a MetaTensor keeps its meta data)."""
    if _is_floating(img):
        return img
    return convert_data_type(img, dtype=torch.float32 if isinstance(img, torch.Tensor) else np.float32)[0]


def _meta(img: NdarrayOrTensor) -> Mapping[Any, Any]:
    """The meta data of a MetaTensor, an empty mapping for anything else."""
    return img.meta if isinstance(img, MetaTensor) else {}


def _check_range(b_min: float, b_max: float) -> None:
    if not (math.isfinite(b_min) and math.isfinite(b_max)) or b_min >= b_max:
        raise ValueError(f"b_min must be finite and smaller than b_max, got b_min={b_min}, b_max={b_max}.")


def _resolve_window(
    preset: str | CTWindowPreset | None, level: float | None, width: float | None
) -> tuple[float, float]:
    """(level, width) from either a preset name or an explicit level and width."""
    if preset is not None:
        if level is not None or width is not None:
            raise ValueError("Give either `preset` or both `level` and `width`, not both.")
        try:
            name = CTWindowPreset(preset).value
        except ValueError:
            options = ", ".join(p.value for p in CTWindowPreset)
            raise ValueError(f"Unknown CT window preset {preset!r}; choose one of: {options}.") from None
        if name == CTWindowPreset.DISPLAY.value:
            raise ValueError(
                "preset 'display' is not a HU window (it scales display grey levels); it has no level and width."
            )
        return CTWindow.PRESETS[name]
    if level is None or width is None:
        raise ValueError("Give either `preset` or both `level` and `width` (in HU).")
    level, width = float(level), float(width)
    if not math.isfinite(level):
        raise ValueError(f"level must be finite, got {level}.")
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a finite number > 0, got {width}.")
    return level, width


def _check_hounsfield(img: NdarrayOrTensor, name: str) -> None:
    """Raise when ``img`` was read from a display-ready PNG/JPEG file (not Hounsfield units)."""
    fmt = _meta(img).get(SOURCE_FORMAT_KEY)
    if fmt is not None and str(fmt).lower() in (SourceFormat.PNG.value, SourceFormat.JPEG.value):
        filename = _meta(img).get(FILENAME_KEY, "<unknown file>")
        raise ValueError(
            f"{name}: image {filename!s} was read from a {str(fmt).lower()} file, whose intensities are display-ready "
            "grey levels and not Hounsfield units; the CT transforms expect CT in HU (DICOM or NIfTI). For CT slices "
            "already exported as display grey levels use the preset 'display' (bundles: --ct_window display); pass "
            "check_hu=False to window it anyway."
        )


class CTWindow(Transform):
    """Window a CT image given in Hounsfield units (HU) and scale the window to ``[b_min, b_max]``.

    The window ``[level - width / 2, level + width / 2]`` HU is mapped linearly to ``[b_min, b_max]``
    (values outside are clipped when ``clip``). Built on :class:`monai.transforms.ScaleIntensityRange`.

    Presets (level, width in HU), see :attr:`PRESETS`: ``soft_tissue`` (40, 400), ``lung`` (-600, 1500),
    ``bone`` (400, 1800), ``brain`` (40, 80). The preset ``display`` is for CT slices that were *already* windowed
    and exported as display grey levels (8/16-bit PNG/JPEG, e.g. MedNIST): no HU window is applied, the stored range
    ``[0, 2**bit_depth - 1]`` is scaled to ``[b_min, b_max]`` with :class:`ScaleToRange` (``source="auto"``), and
    :attr:`hu_range` is ``None``.

    Args:
        preset: name of a window preset (:class:`~medsyn_monai.utils.enums.CTWindowPreset`). Exclusive with
            ``level``/``width``.
        level: window centre in HU (with ``width``, when no ``preset``).
        width: window width in HU, > 0 (with ``level``, when no ``preset``).
        b_min: output value of the window's lower edge.
        b_max: output value of the window's upper edge.
        clip: clip the output to ``[b_min, b_max]``.
        check_hu: raise when the input is a MetaTensor whose meta ``"source_format"`` is ``png`` or ``jpeg``
            (display-ready grey levels, not HU).
        dtype: output data type (float32 by default).

    Raises:
        ValueError: when not exactly one of ``preset`` or (``level`` and ``width``) is given, for an unknown
            preset, a width <= 0, or ``b_min >= b_max``.

    Example:
        >>> import numpy as np
        >>> CTWindow("soft_tissue")(np.array([[-1000.0, -160.0, 40.0, 240.0]])).tolist()
        [[-1.0, -1.0, 0.0, 1.0]]
        >>> CTWindow("display")(np.array([[0, 255]], dtype=np.uint8)).tolist()  # already windowed 8-bit grey levels
        [[-1.0, 1.0]]
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    #: (level, width) in HU of each :class:`~medsyn_monai.utils.enums.CTWindowPreset`.
    PRESETS: ClassVar[dict[str, tuple[float, float]]] = {
        CTWindowPreset.SOFT_TISSUE.value: (40.0, 400.0),
        CTWindowPreset.LUNG.value: (-600.0, 1500.0),
        CTWindowPreset.BONE.value: (400.0, 1800.0),
        CTWindowPreset.BRAIN.value: (40.0, 80.0),
    }

    def __init__(
        self,
        preset: str | CTWindowPreset | None = None,
        level: float | None = None,
        width: float | None = None,
        b_min: float = -1.0,
        b_max: float = 1.0,
        clip: bool = True,
        check_hu: bool = True,
        dtype: DtypeLike = np.float32,
    ) -> None:
        _check_range(b_min, b_max)
        self.b_min = float(b_min)
        self.b_max = float(b_max)
        self.clip = clip
        self.check_hu = check_hu
        self.dtype = dtype
        self.display = preset is not None and str(preset) == CTWindowPreset.DISPLAY.value
        if self.display:
            if level is not None or width is not None:
                raise ValueError("Give either `preset` or both `level` and `width`, not both.")
            self.level: float | None = None
            self.width: float | None = None
            self.scaler: Callable = ScaleToRange(ScaleSource.AUTO, b_min=b_min, b_max=b_max, clip=clip, dtype=dtype)
            return
        self.level, self.width = _resolve_window(preset, level, width)
        self.scaler = ScaleIntensityRange(
            a_min=self.level - self.width / 2.0,
            a_max=self.level + self.width / 2.0,
            b_min=self.b_min,
            b_max=self.b_max,
            clip=clip,
            dtype=dtype,
        )

    @property
    def hu_range(self) -> tuple[float, float] | None:
        """The HU interval ``(level - width / 2, level + width / 2)`` mapped to ``[b_min, b_max]``.

        ``None`` for the ``display`` preset (the input is not in HU).

        Example:
            >>> CTWindow("soft_tissue").hu_range
            (-160.0, 240.0)
            >>> CTWindow("display").hu_range is None
            True
        """
        if self.display or self.level is None or self.width is None:
            return None
        return (self.level - self.width / 2.0, self.level + self.width / 2.0)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Window ``img`` (any shape, values in HU).

        Args:
            img: CT image in Hounsfield units.

        Returns:
            The windowed image, same container type as ``img``.

        Raises:
            ValueError: when ``check_hu`` and ``img`` was read from a PNG/JPEG file.
        """
        if self.display:
            return self.scaler(img)
        if self.check_hu:
            _check_hounsfield(img, type(self).__name__)
        return _like_input(self.scaler(_to_float(img)), img)


class RandCTWindow(RandomizableTransform):
    """Random CT window: a replacement for :class:`CTWindow` that jitters the window around a centre window.

    Design: use this transform *instead of* :class:`CTWindow` (chaining it after a deterministic ``CTWindow``
    makes no sense, the HU values are gone by then). The centre window comes from ``preset`` or from
    ``level``/``width``, exactly as in :class:`CTWindow`. With probability ``prob`` a level is drawn uniformly in
    ``[level - level_jitter, level + level_jitter]`` and a width in ``[width - width_jitter, width + width_jitter]``;
    otherwise the centre window is applied exactly, so the output is always windowed and scaled to
    ``[b_min, b_max]``. Random numbers come from ``self.R`` (see ``set_random_state``), as in MONAI.

    Args:
        preset: centre window preset name (exclusive with ``level``/``width``).
        level: centre window level in HU.
        width: centre window width in HU, > 0.
        level_jitter: maximal absolute change of the level in HU, >= 0.
        width_jitter: maximal absolute change of the width in HU, >= 0 and < the centre width.
        prob: probability of jittering the window.
        b_min: output value of the window's lower edge.
        b_max: output value of the window's upper edge.
        clip: clip the output to ``[b_min, b_max]``.
        check_hu: as in :class:`CTWindow`.
        dtype: output data type (float32 by default).

    Raises:
        ValueError: for the window arguments as in :class:`CTWindow`, a negative jitter or a width jitter that
            could make the width <= 0.

    Example:
        >>> import numpy as np
        >>> t = RandCTWindow("soft_tissue", level_jitter=20, width_jitter=50, prob=1.0).set_random_state(0)
        >>> out = t(np.array([[40.0, 1000.0]]))
        >>> 20.0 <= t.sampled_level <= 60.0, 350.0 <= t.sampled_width <= 450.0, out[0, 1].item()
        (True, True, 1.0)
    """

    backend = CTWindow.backend

    def __init__(
        self,
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
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.window = CTWindow(
            preset=preset, level=level, width=width, b_min=b_min, b_max=b_max, clip=clip, check_hu=check_hu, dtype=dtype
        )
        hu_level, hu_width = self.window.level, self.window.width
        if self.window.display or hu_level is None or hu_width is None:  # only 'display' has no level and width
            raise ValueError("RandCTWindow needs a HU window; preset 'display' has none (use CTWindow for it).")
        self.level, self.width = float(hu_level), float(hu_width)
        if not (math.isfinite(level_jitter) and level_jitter >= 0):
            raise ValueError(f"level_jitter must be a finite number >= 0, got {level_jitter}.")
        if not (math.isfinite(width_jitter) and 0 <= width_jitter < self.width):
            raise ValueError(
                f"width_jitter must be >= 0 and smaller than the window width {self.width}, got {width_jitter}."
            )
        self.level_jitter = float(level_jitter)
        self.width_jitter = float(width_jitter)
        self.sampled_level = self.level
        self.sampled_width = self.width

    def randomize(self, data: Any | None = None) -> None:
        """Decide whether to jitter and, if so, draw the level and width."""
        super().randomize(None)
        if not self._do_transform:
            self.sampled_level, self.sampled_width = self.level, self.width
            return
        self.sampled_level = self.level + self.R.uniform(-self.level_jitter, self.level_jitter)
        self.sampled_width = self.width + self.R.uniform(-self.width_jitter, self.width_jitter)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Window ``img`` with a (possibly) jittered window.

        Args:
            img: CT image in Hounsfield units.
            randomize: draw new random parameters first (set False to reuse the last ones).

        Returns:
            The windowed image, same container type as ``img``.
        """
        if randomize:
            self.randomize()
        if not self._do_transform:
            return self.window(img)
        window = CTWindow(
            level=self.sampled_level,
            width=self.sampled_width,
            b_min=self.window.b_min,
            b_max=self.window.b_max,
            clip=self.window.clip,
            check_hu=self.window.check_hu,
            dtype=self.window.dtype,
        )
        return window(img)


def _photometric_value(value: Any) -> str | None:
    """Normalise a photometric interpretation entry (string, list, or DICOM JSON dict) to an upper-case string."""
    if isinstance(value, Mapping):
        value = value.get("Value")
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) > 0 else None
    if isinstance(value, bytes):
        value = value.decode(errors="ignore")
    if isinstance(value, str):
        return value.strip().upper()
    return None


class InvertMonochrome1(Transform):
    """Invert MONOCHROME1 images (bright = low values) so that bright means high values (MONOCHROME2).

    The photometric interpretation is read from the MetaTensor meta key ``"photometric_interpretation"``, or from
    the raw DICOM tag key ``"00280004"`` written by MONAI's ``PydicomReader`` (string or DICOM JSON form
    ``{"vr": "CS", "Value": ["MONOCHROME1"]}``). For MONOCHROME1 images, ``out = max + min - img`` where
    ``min``/``max`` are the image's own extrema or ``b_min``/``b_max`` when given, and the meta data is set to
    ``"MONOCHROME2"`` (both keys), so applying the transform twice inverts only once. Any other image (other
    interpretation, no meta data, numpy arrays, plain tensors) is returned unchanged.

    The output keeps a floating input dtype; integer inputs become float32.

    Args:
        b_min: lower end of the intensity range used for the inversion (with ``b_max``), else the image minimum.
        b_max: upper end of the intensity range used for the inversion (with ``b_min``), else the image maximum.

    Raises:
        ValueError: when only one of ``b_min``/``b_max`` is given or ``b_min >= b_max``.

    Example:
        >>> import torch
        >>> from monai.data import MetaTensor
        >>> img = MetaTensor(torch.tensor([[[0.0, 1.0, 4.0]]]), meta={"photometric_interpretation": "MONOCHROME1"})
        >>> out = InvertMonochrome1()(img)
        >>> out.tolist(), out.meta["photometric_interpretation"]
        ([[[4.0, 3.0, 0.0]]], 'MONOCHROME2')
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, b_min: float | None = None, b_max: float | None = None) -> None:
        if (b_min is None) != (b_max is None):
            raise ValueError("Give both b_min and b_max, or neither (to use the image's own min and max).")
        if b_min is not None and b_max is not None:
            _check_range(b_min, b_max)
        self.b_min = b_min
        self.b_max = b_max

    @staticmethod
    def photometric_interpretation(meta: Mapping[Any, Any]) -> str | None:
        """The upper-case photometric interpretation stored in ``meta``, or None.

        Args:
            meta: meta data dictionary (e.g. ``MetaTensor.meta``).

        Returns:
            ``"MONOCHROME1"``, ``"MONOCHROME2"``, ``"RGB"``... or None when absent.
        """
        value = _photometric_value(meta.get(PHOTOMETRIC_KEY))
        if value is None:
            value = _photometric_value(meta.get(DICOM_PHOTOMETRIC_TAG))
        return value

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Invert ``img`` when its meta data says MONOCHROME1.

        Args:
            img: channel-first image.

        Returns:
            The inverted image with updated meta data, or ``img`` itself when nothing is to be done.
        """
        if self.photometric_interpretation(_meta(img)) != "MONOCHROME1":
            return img
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        if not torch.is_floating_point(img_t):
            img_t = img_t.to(torch.float32)
        if self.b_min is not None and self.b_max is not None:
            low, high = float(self.b_min), float(self.b_max)
        else:
            low, high = float(img_t.min()), float(img_t.max())
        out = (high + low) - img_t
        if isinstance(out, MetaTensor):
            meta = dict(out.meta)  # a new dict: never edit the input's meta in place
            meta[PHOTOMETRIC_KEY] = "MONOCHROME2"
            raw = meta.get(DICOM_PHOTOMETRIC_TAG)
            if isinstance(raw, Mapping):
                meta[DICOM_PHOTOMETRIC_TAG] = {**raw, "Value": ["MONOCHROME2"]}
            elif raw is not None:
                meta[DICOM_PHOTOMETRIC_TAG] = "MONOCHROME2"
            out.meta = meta
        return _like_input(out, img)


class XRayNormalize(Transform):
    """Normalise a radiograph: optional MONOCHROME1 inversion, then percentile scaling to ``[b_min, b_max]``.

    The inversion (:class:`InvertMonochrome1`) comes first, so that bright structures (bone) always end near
    ``b_max``. The scaling is :class:`monai.transforms.ScaleIntensityRangePercentiles`: the ``lower`` and ``upper``
    percentiles of the image are mapped to ``b_min`` and ``b_max``.

    Args:
        lower: lower percentile in ``[0, 100)``.
        upper: upper percentile in ``(lower, 100]``.
        b_min: output value of the lower percentile.
        b_max: output value of the upper percentile.
        clip: clip the output to ``[b_min, b_max]``.
        invert_monochrome1: invert MONOCHROME1 images first (see :class:`InvertMonochrome1`).
        channel_wise: compute the percentiles per channel.
        dtype: output data type (float32 by default).

    Raises:
        ValueError: when not ``0 <= lower < upper <= 100`` or ``b_min >= b_max``.

    Example:
        >>> import numpy as np
        >>> XRayNormalize(lower=0, upper=100)(np.array([[0.0, 5.0, 10.0]])).tolist()
        [[-1.0, 0.0, 1.0]]
    """

    backend = ScaleIntensityRangePercentiles.backend

    def __init__(
        self,
        lower: float = 0.5,
        upper: float = 99.5,
        b_min: float = -1.0,
        b_max: float = 1.0,
        clip: bool = True,
        invert_monochrome1: bool = True,
        channel_wise: bool = False,
        dtype: DtypeLike = np.float32,
    ) -> None:
        if not 0.0 <= lower < upper <= 100.0:
            raise ValueError(f"Percentiles must satisfy 0 <= lower < upper <= 100, got lower={lower}, upper={upper}.")
        _check_range(b_min, b_max)
        self.inverter = InvertMonochrome1() if invert_monochrome1 else None
        self.scaler = ScaleIntensityRangePercentiles(
            lower=lower, upper=upper, b_min=b_min, b_max=b_max, clip=clip, channel_wise=channel_wise, dtype=dtype
        )

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Normalise ``img``.

        Args:
            img: channel-first radiograph.

        Returns:
            The normalised image, same container type as ``img``.
        """
        out = self.inverter(img) if self.inverter is not None else img
        return _like_input(self.scaler(out), img)


class RGBToGrey(Transform):
    """Convert a channel-first colour image to one grey channel: ``grey = wr * R + wg * G + wb * B``.

    The default weights are ITU-R BT.601 luma. Four channels (RGBA) drop the alpha channel first; one channel is
    returned unchanged; any other channel count raises. The output keeps a floating input dtype; integer inputs
    become float32. A MetaTensor with ``photometric_interpretation == "RGB"`` gets ``"MONOCHROME2"``.

    Args:
        weights: the three channel weights (R, G, B).

    Raises:
        ValueError: when ``weights`` does not hold three finite numbers, or at call time for an image with a
            channel count other than 1, 3 or 4.

    Example:
        >>> import numpy as np
        >>> img = np.zeros((3, 1, 2))
        >>> img[1] = 1.0  # pure green
        >>> RGBToGrey()(img).tolist()
        [[[0.587, 0.587]]]
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, weights: Sequence[float] = (0.299, 0.587, 0.114)) -> None:
        weights = tuple(float(w) for w in weights)
        if len(weights) != 3 or not all(math.isfinite(w) for w in weights):
            raise ValueError(f"weights must be three finite numbers (R, G, B), got {weights}.")
        self.weights = weights

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Convert ``img`` of shape (C, spatial...) with C in {1, 3, 4} to (1, spatial...).

        Args:
            img: channel-first image.

        Returns:
            The one-channel image, same container type as ``img``.

        Raises:
            ValueError: for a channel count other than 1, 3 or 4.
        """
        channels = img.shape[0] if img.ndim > 0 else 0
        if img.ndim < 2 or channels not in (1, 3, 4):
            raise ValueError(
                f"RGBToGrey expects a channel-first image with 1, 3 (RGB) or 4 (RGBA) channels, got shape "
                f"{tuple(img.shape)}."
            )
        if channels == 1:
            return img
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        rgb = img_t.as_tensor() if isinstance(img_t, MetaTensor) else img_t
        rgb = rgb[:3]
        if not torch.is_floating_point(rgb):
            rgb = rgb.to(torch.float32)
        w = torch.as_tensor(self.weights, dtype=rgb.dtype, device=rgb.device).reshape(3, *([1] * (rgb.ndim - 1)))
        grey = (rgb * w).sum(dim=0, keepdim=True)
        out = convert_to_dst_type(grey, dst=img_t, dtype=grey.dtype)[0]
        if isinstance(out, MetaTensor):
            meta = dict(out.meta)
            if InvertMonochrome1.photometric_interpretation(meta) == "RGB":
                meta[PHOTOMETRIC_KEY] = "MONOCHROME2"
            out.meta = meta
        return _like_input(out, img)


class ScaleToRange(Transform):
    """Scale intensities linearly from a source range to ``[b_min, b_max]``.

    Source range (``source``, see :class:`~medsyn_monai.utils.enums.ScaleSource`):

    - ``"auto"``: ``[0, 2**bit_depth - 1]`` when the input is a MetaTensor with meta ``"bit_depth"`` (8-bit: 255
      maps to ``b_max``, 16-bit: 65535 maps to ``b_max``), else ``"minmax"``.
    - ``"minmax"``: the image's own minimum and maximum; a constant image gives ``b_min`` everywhere.
    - ``"dtype"``: the range of the input's integer dtype (``uint8``: ``[0, 255]``, ``uint16``: ``[0, 65535]``).
    - a pair ``(a_min, a_max)``: that fixed range.

    Built on :class:`monai.transforms.ScaleIntensityRange`.

    Args:
        source: where the source range comes from (see above).
        b_min: output value of the source range's lower end.
        b_max: output value of the source range's upper end.
        clip: clip the output to ``[b_min, b_max]``.
        dtype: output data type (float32 by default).

    Raises:
        ValueError: for an unknown ``source`` string, a pair with ``a_min >= a_max``, ``b_min >= b_max``, or at call
            time ``"dtype"`` on a non-integer input or an invalid meta ``bit_depth``.

    Example:
        >>> import numpy as np
        >>> ScaleToRange("dtype")(np.array([[0, 255]], dtype=np.uint8)).tolist()
        [[-1.0, 1.0]]
        >>> ScaleToRange((0, 10), b_min=0.0, b_max=1.0)(np.array([[5.0, 20.0]])).tolist()
        [[0.5, 1.0]]
    """

    backend = ScaleIntensityRange.backend

    def __init__(
        self,
        source: str | ScaleSource | Sequence[float] = ScaleSource.AUTO,
        b_min: float = -1.0,
        b_max: float = 1.0,
        clip: bool = True,
        dtype: DtypeLike = np.float32,
    ) -> None:
        self.source: ScaleSource | tuple[float, float]
        if isinstance(source, str):
            try:
                self.source = ScaleSource(source)
            except ValueError:
                options = ", ".join(s.value for s in ScaleSource)
                raise ValueError(
                    f"Unknown source {source!r}; choose one of: {options}, or a pair (a_min, a_max)."
                ) from None
        else:
            pair = tuple(float(v) for v in source)
            if len(pair) != 2 or not all(math.isfinite(v) for v in pair) or pair[0] >= pair[1]:
                raise ValueError(
                    f"A source range must be two finite numbers (a_min, a_max) with a_min < a_max, got {source}."
                )
            self.source = (pair[0], pair[1])
        _check_range(b_min, b_max)
        self.b_min = float(b_min)
        self.b_max = float(b_max)
        self.clip = clip
        self.dtype = dtype

    def source_range(self, img: NdarrayOrTensor) -> tuple[float, float]:
        """The source intensity range ``(a_min, a_max)`` used for ``img``.

        Args:
            img: the image to scale.

        Returns:
            ``(a_min, a_max)``; equal values for a constant image with ``"minmax"``.

        Raises:
            ValueError: ``"dtype"`` on a non-integer input, or an invalid meta ``bit_depth``.
        """
        if isinstance(self.source, tuple):
            return self.source
        if self.source == ScaleSource.AUTO:
            bits = _meta(img).get(BIT_DEPTH_KEY)
            if bits is not None:
                bits_i = int(bits)
                if bits_i != float(bits) or not 1 <= bits_i <= 32:
                    raise ValueError(f"Meta data bit_depth must be an integer in [1, 32], got {bits!r}.")
                return 0.0, float(2**bits_i - 1)
        if self.source == ScaleSource.DTYPE:
            dtype = img.dtype
            info: torch.iinfo | np.iinfo | None
            if isinstance(dtype, torch.dtype):
                is_int = not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
                info = torch.iinfo(dtype) if is_int else None
            else:
                info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
            if info is None:
                raise ValueError(
                    f"ScaleToRange(source='dtype') needs an integer input (e.g. uint8, uint16), got {dtype}."
                )
            return float(info.min), float(info.max)
        img_t = convert_to_tensor(img, track_meta=False)
        return float(img_t.min()), float(img_t.max())

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Scale ``img``.

        Args:
            img: the image to scale.

        Returns:
            The scaled image, same container type as ``img``.
        """
        a_min, a_max = self.source_range(img)
        if a_max == a_min:  # constant image with "minmax": every value maps to b_min, without dividing by zero
            a_max = a_min + 1.0
        scaler = ScaleIntensityRange(
            a_min=a_min, a_max=a_max, b_min=self.b_min, b_max=self.b_max, clip=self.clip, dtype=self.dtype
        )
        return _like_input(scaler(_to_float(img)), img)
