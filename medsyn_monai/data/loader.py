"""Load any supported medical image (DICOM file or series, NIfTI, PNG, JPEG, TIFF, in-memory array) as a MetaTensor.

TIFF files are read with :class:`TiffReader` (built on ``tifffile``; compressed files are decoded by ``imagecodecs``):
Pillow alone silently reduces 16-bit RGB TIFF to 8 bits, and MONAI's ``PILReader`` reads only the first page of a
multi-page file.
"""

from __future__ import annotations

import logging
import os
import warnings
import zlib
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import tifffile
import torch
from monai.config import KeysCollection, PathLike
from monai.data import ImageReader, MetaTensor, NibabelReader, PILReader
from monai.data.image_reader import _copy_compatible_dict, _stack_images
from monai.data.utils import affine_to_spacing, is_supported_format
from monai.transforms import LoadImage, MapTransform, Transform
from monai.utils import MetaKeys, ensure_tuple

from medsyn_monai.data.dicom_reader import DICOM_SUFFIXES, DicomSeriesReader, is_dicom_file
from medsyn_monai.data.errors import BadFileError
from medsyn_monai.utils.enums import SourceFormat

__all__ = ["LoadMedicalImage", "LoadMedicalImaged", "TiffReader"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
PNG_SUFFIXES = (".png",)
JPEG_SUFFIXES = (".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")

_PIL_8BIT_MODES = {"1", "L", "P", "LA", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
_PIL_16BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def source_format_of(path: str | os.PathLike | Sequence[str | os.PathLike]) -> SourceFormat:
    """Tell which :class:`~medsyn_monai.utils.enums.SourceFormat` a path (or list of DICOM files) holds.

    Args:
        path: a file, a folder (DICOM series) or a sequence of DICOM files (one series).

    Returns:
        the format.

    Raises:
        BadFileError: the path does not exist or is not a supported image file (stage ``"load"``).

    Example:
        >>> str(source_format_of("scan.nii.gz")), str(source_format_of("xray.PNG")), str(source_format_of("t.tif"))
        ('nifti', 'png', 'tiff')
    """
    if isinstance(path, (list, tuple)):
        if len(path) == 1:
            return source_format_of(path[0])
        return SourceFormat.DICOM_SERIES
    p = Path(path)  # type: ignore[arg-type]  # a single path (lists and tuples are handled above)
    name = p.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return SourceFormat.NIFTI
    if name.endswith(PNG_SUFFIXES):
        return SourceFormat.PNG
    if name.endswith(JPEG_SUFFIXES):
        return SourceFormat.JPEG
    if name.endswith(TIFF_SUFFIXES):
        return SourceFormat.TIFF
    if name.endswith(DICOM_SUFFIXES):
        return SourceFormat.DICOM
    if p.is_dir():
        return SourceFormat.DICOM_SERIES
    if not p.exists():
        raise BadFileError(p, "file not found", stage="load")
    if is_dicom_file(p):
        return SourceFormat.DICOM
    suffix = p.suffix or "(no suffix)"
    raise BadFileError(p, f"unsupported file type {suffix!r}: expected DICOM, NIfTI, PNG, JPEG or TIFF", stage="load")


def _check_finite(image: torch.Tensor, where: str) -> None:
    """Raise a load-stage :class:`BadFileError` when ``image`` holds NaN or infinite values."""
    if not image.is_floating_point():
        return
    finite = torch.isfinite(image)
    if bool(finite.all()):
        return
    nan = int(torch.isnan(image).sum())
    inf = int(finite.numel() - int(finite.sum())) - nan
    raise BadFileError(
        where,
        f"{nan} NaN and {inf} infinite value(s) among {finite.numel()}: an image must hold finite numbers "
        "(fix or remove the file)",
        stage="load",
    )


def _pil_converter(img: Any) -> Any:
    """Convert PIL modes numpy cannot use as they are: palette, alpha, bilevel, CMYK ... (8-bit stays 8-bit)."""
    mode = img.mode
    if mode in ("P", "PA"):
        rgb = img.convert("RGB")
        arr = np.asarray(rgb)
        return rgb.convert("L") if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all() else rgb
    if mode in ("LA", "1"):
        return img.convert("L")
    if mode in ("RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        return img.convert("RGB")
    return img


def _bit_depth_of_mode(mode: str | None) -> int | None:
    if mode in _PIL_16BIT_MODES:
        return 16
    if mode in _PIL_8BIT_MODES:
        return 8
    return None


def _describe_error(err: BaseException, fmt: SourceFormat | None) -> str:
    """A short human reason for a failure while loading a file of format ``fmt``."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, pydicom.errors.InvalidDicomError):
        return "not a DICOM file (no 'DICM' preamble at byte 128)"
    if isinstance(err, FileNotFoundError):
        return "file not found"
    if fmt in (SourceFormat.PNG, SourceFormat.JPEG):
        name = "PNG" if fmt == SourceFormat.PNG else "JPEG"
        if "truncated" in text.lower() or isinstance(err, (EOFError, SyntaxError)):
            return f"truncated {name} file ({text})"
        if type(err).__name__ == "UnidentifiedImageError":
            return f"not a {name} image (Pillow cannot identify it)"
        return f"cannot read {name} file: {type(err).__name__}: {text}"
    if fmt == SourceFormat.TIFF:
        if isinstance(err, tifffile.TiffFileError):
            if "not a tiff file" in text.lower():
                return "not a TIFF file (tifffile cannot read its header)"
            return f"corrupted TIFF header ({text})"
        if isinstance(err, EOFError) or "failed to read" in text.lower() or "truncat" in text.lower():
            return f"truncated TIFF file ({type(err).__name__}: {text})"
        return f"cannot read TIFF file: {type(err).__name__}: {text}"
    if fmt == SourceFormat.NIFTI:
        if isinstance(err, (EOFError, zlib.error)) or "truncat" in text.lower() or "expected" in text.lower():
            return f"truncated NIfTI file ({type(err).__name__}: {text})"
        if type(err).__name__ == "ImageFileError":
            return "not a NIfTI file (nibabel cannot read its header)"
        return f"cannot read NIfTI file: {type(err).__name__}: {text}"
    return f"{type(err).__name__}: {text}"


def _array_to_channel_first(arr: np.ndarray) -> np.ndarray:
    """(H, W) -> (1, W, H); (H, W, C) with C in 1, 3, 4 -> (C, W, H); (D, H, W) -> (1, W, H, D)."""
    if arr.ndim == 2:
        return arr.T[None]
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        return np.transpose(arr, (2, 1, 0))
    if arr.ndim == 3:
        return arr.T[None]
    raise ValueError(f"expected an array of shape (H, W), (H, W, C) or (D, H, W), got shape {arr.shape}")


# ----------------------------------------------------------------------------------------------------------- TIFF
_TIFF_CHANNEL_AXES = "SC"  # tifffile axes: S = samples of a pixel (RGB), C = channels (ImageJ, OME)
_TIFF_IMAGE_AXES = "YX"
#: photometric interpretations read: MINISWHITE (0), MINISBLACK (1), RGB (2), PALETTE (3, turned into RGB or grey
#: as Pillow does for PNG), YCBCR (6) of JPEG compressed files (7), which the JPEG decoder turns into RGB
_TIFF_PHOTOMETRICS = (0, 1, 2, 3, 6)
_TIFF_MINISWHITE = 0
_TIFF_PALETTE = 3
_TIFF_YCBCR = 6
_TIFF_JPEG = 7


@contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """Silence tifffile's own log messages about a broken file: the caller reports the problem itself."""
    tiff_logger = logging.getLogger("tifffile")
    level = tiff_logger.level
    tiff_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        tiff_logger.setLevel(level)


def _tiff_axes_order(axes: str, shape: Sequence[int]) -> tuple[list[int], int, int]:
    """How to transpose a TIFF series of tifffile ``axes`` and ``shape`` to MONAI's ``(X, Y[, Z][, C])``.

    Returns:
        ``(order, n_stack, n_channel)``: a permutation of all axes, whose size-1 axes come last (to be dropped),
        and the number (0 or 1) of stack (page) and channel axes kept.

    Raises:
        ValueError: no ``Y``/``X`` axes, or more than one stack or channel axis of size > 1.
    """
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"TIFF series with axes {axes!r} has no image rows and columns (Y and X axes)")
    big = [i for i, n in enumerate(shape) if int(n) > 1 and axes[i] not in _TIFF_IMAGE_AXES]
    stack = [i for i in big if axes[i] not in _TIFF_CHANNEL_AXES]
    channel = [i for i in big if axes[i] in _TIFF_CHANNEL_AXES]
    if len(stack) > 1:
        raise ValueError(
            f"TIFF with axes {axes!r} of shape {tuple(shape)} has {len(stack)} stack axes "
            f"({', '.join(axes[i] for i in stack)}); only one stack of pages (read as slices along z) is supported: "
            "save one stack per file (e.g. one file per time point)"
        )
    if len(channel) > 1:
        raise ValueError(
            f"TIFF with axes {axes!r} of shape {tuple(shape)} has {len(channel)} channel axes; save the channels as "
            "one axis (e.g. RGB samples)"
        )
    kept = [axes.index("X"), axes.index("Y"), *stack, *channel]
    return kept + [i for i in range(len(axes)) if i not in kept], len(stack), len(channel)


def _tiff_problem(tif: Any, size: int) -> str | None:
    """What makes the first series of an open ``tifffile.TiffFile`` unreadable (file of ``size`` bytes), or None.

    Header level only: image layout, photometric interpretation, compression codec, and whether every strip/tile
    of pixel data lies inside the file (a truncated file).
    """
    if not tif.series:
        return "no image in the TIFF file"
    series = tif.series[0]
    shape = tuple(int(n) for n in series.shape)
    if not shape or min(shape) < 1:
        return f"empty TIFF image (shape {shape})"
    try:
        _tiff_axes_order(series.axes, shape)
    except ValueError as e:
        return str(e)
    page = series.keyframe
    photometric = int(page.photometric)
    if photometric not in _TIFF_PHOTOMETRICS or (photometric == _TIFF_YCBCR and int(page.compression) != _TIFF_JPEG):
        name = getattr(page.photometric, "name", str(photometric))
        return (
            f"unsupported TIFF photometric interpretation {name}: expected grey (MINISBLACK, MINISWHITE), RGB or "
            "palette; save the image as a grey or RGB TIFF"
        )
    compression = page.compression
    if int(compression) != 1:
        try:
            tifffile.TIFF.DECOMPRESSORS[compression]
        except (KeyError, ValueError, ImportError) as e:
            name = getattr(compression, "name", str(compression))
            return f"TIFF compression {name} cannot be decoded ({e}); install imagecodecs (pip install imagecodecs)"
    end = 0
    if series.dataoffset is not None:  # one contiguous block of uncompressed pixel data
        end = int(series.dataoffset) + int(series.nbytes)
    for p in series.pages:
        if p is None:
            continue
        for offset, count in zip(p.dataoffsets, p.databytecounts, strict=False):
            if count:
                end = max(end, int(offset) + int(count))
    if end > size:
        return f"truncated: pixel data ends at byte {end}, the file has {size} bytes"
    return None


def tiff_header_problem(path: str | os.PathLike) -> str | None:
    """Header-level check of a TIFF file: the reason it cannot be loaded, or None when it looks readable.

    Args:
        path: the TIFF file.

    Returns:
        a short human reason (not a TIFF file, corrupted header, truncated pixel data, unsupported layout,
        photometric interpretation or compression), or None.

    Example:
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "a.tif")
        >>> tifffile.imwrite(path, np.zeros((4, 5), np.uint16))
        >>> tiff_header_problem(path) is None
        True
        >>> with open(path, "r+b") as f:  # cut off the last pixel row
        ...     _ = f.truncate(os.path.getsize(path) - 10)
        >>> tiff_header_problem(path).split(":")[0]
        'truncated'
    """
    try:
        with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
            return _tiff_problem(tif, os.path.getsize(path))
    except Exception as e:
        return _describe_error(e, SourceFormat.TIFF)


@dataclass
class _TiffImage:
    """A decoded TIFF series: pixels in MONAI's ``(X, Y[, Z][, C])`` order and what the reader found out."""

    array: np.ndarray
    meta: dict = field(default_factory=dict)


class TiffReader(ImageReader):
    """Read TIFF files with ``tifffile``: 8/16-bit (any integer or float type), grey or RGB, single- or multi-page.

    The first image series of the file is read. A single-page image of H rows and W columns becomes ``(W, H)``
    (grey) or ``(W, H, C)`` (RGB), exactly as MONAI's ``PILReader`` reads a PNG, so ``LoadImage`` makes it
    ``(C, W, H)``. A multi-page file (a stack, e.g. tifffile axes ``QYX``, ``IYX`` or ImageJ ``ZYX``) is a volume
    whose pages are slices along the last spatial axis: ``(W, H, D[, C])``, like a NIfTI volume. Alpha samples are
    dropped (as the project's PNG loader does), bilevel images become 0/255 8-bit. The meta data holds ``format``
    (``"TIFF"``), ``width``, ``height``, ``num_pages``, ``tiff_axes`` (tifffile's axes of the series),
    ``bit_depth`` (``BitsPerSample`` for unsigned integer pixels, 8 for bilevel, else ``None``) and
    ``photometric_interpretation`` (``"MONOCHROME1"`` for MINISWHITE files, so that
    :class:`~medsyn_monai.transforms.InvertMonochrome1` inverts them, else ``None``). The affine is the identity
    (pixel units, as for PNG). Palette images become 8-bit RGB, or grey when every colour is grey, as the
    project's PNG loader does.

    Raises:
        BadFileError: from :meth:`read`, stage ``"load"``, for a file that is not a TIFF, is truncated or
            corrupted, or has an unsupported layout (several stack axes), photometric interpretation (CMYK,
            CIELAB...) or compression.

    Example:
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "stack.tif")
        >>> tifffile.imwrite(path, np.zeros((3, 4, 5), np.uint16), photometric="minisblack")  # 3 pages of 4x5
        >>> arr, meta = TiffReader().get_data(TiffReader().read(path))
        >>> arr.shape, meta["num_pages"], meta["bit_depth"]
        ((5, 4, 3), 3, 16)
    """

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        """Whether every file name ends with ``.tif`` or ``.tiff`` (any case).

        Args:
            filename: a file name or a list of file names.
        """
        return is_supported_format(filename, ["tif", "tiff"])

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs: Any) -> Sequence[Any] | Any:
        """Read and decode the first image series of each file.

        Args:
            data: a file name or a list of file names.
            kwargs: unused (kept for MONAI's ``ImageReader`` interface).

        Returns:
            one decoded image, or a list of them for several files.

        Raises:
            BadFileError: see the class docstring.
        """
        images = [self._read_one(str(name)) for name in ensure_tuple(data)]
        return images if len(images) > 1 else images[0]

    @staticmethod
    def _read_one(path: str) -> _TiffImage:
        try:
            with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
                problem = _tiff_problem(tif, os.path.getsize(path))
                if problem is not None:
                    raise BadFileError(path, problem, stage="load")
                series = tif.series[0]
                page = series.keyframe
                axes = str(series.axes)
                arr = np.asarray(series.asarray())
                photometric = int(page.photometric)
                bits = int(page.bitspersample)
                n_extra = len(page.extrasamples or ())
                colormap = page.colormap if photometric == _TIFF_PALETTE else None
        except BadFileError:
            raise
        except Exception as e:
            raise BadFileError(path, _describe_error(e, SourceFormat.TIFF), stage="load") from e
        if len(axes) != arr.ndim:
            raise BadFileError(path, f"TIFF series axes {axes!r} do not match its pixel array {arr.shape}", "load")
        order, n_stack, n_channel = _tiff_axes_order(axes, arr.shape)
        kept = 2 + n_stack + n_channel
        shape = arr.shape
        arr = np.transpose(arr, order).reshape([shape[i] for i in order[:kept]])  # size-1 axes dropped
        if n_channel and axes[order[kept - 1]] == "S" and 0 < n_extra < arr.shape[-1]:
            arr = arr[..., : arr.shape[-1] - n_extra]  # drop alpha (extra samples)
            if arr.shape[-1] == 1:
                arr, n_channel = arr[..., 0], 0
        if colormap is not None and n_channel == 0:  # palette indices -> 8-bit RGB (grey when R = G = B), as Pillow
            rgb = np.moveaxis(np.asarray(colormap)[:, arr] // 256, 0, -1).astype(np.uint8)
            grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
            arr, bits = (rgb[..., 0] if grey else rgb), 8
            n_channel = 0 if grey else 1
        if arr.dtype == np.bool_:
            arr, bits = arr.astype(np.uint8) * np.uint8(255), 8
        if arr.dtype.kind == "u":
            bit_depth: int | None = bits if 1 < bits <= 8 * arr.dtype.itemsize else 8 * arr.dtype.itemsize
        else:
            bit_depth = None
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
        spatial = arr.shape[: 2 + n_stack]
        meta = {
            "format": "TIFF",
            "width": int(spatial[0]),
            "height": int(spatial[1]),
            "num_pages": int(spatial[2]) if n_stack else 1,
            "tiff_axes": axes,
            "bit_depth": bit_depth,
            "photometric_interpretation": "MONOCHROME1" if photometric == _TIFF_MINISWHITE else None,
            MetaKeys.SPATIAL_SHAPE: np.asarray(spatial),
            MetaKeys.ORIGINAL_CHANNEL_DIM: -1 if n_channel else float("nan"),
        }
        return _TiffImage(arr, meta)

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """The pixels and meta data of one decoded image (several are stacked as channels, as MONAI does).

        Args:
            img: what :meth:`read` returned.

        Returns:
            ``(array, meta)``, the array in ``(X, Y[, Z][, C])`` order.
        """
        arrays: list[np.ndarray] = []
        compatible: dict = {}
        for image in ensure_tuple(img):
            arrays.append(image.array)
            _copy_compatible_dict(dict(image.meta), compatible)
        return _stack_images(arrays, compatible), compatible


def _quiet_load_image(reader: Any, dtype: Any) -> LoadImage:
    """``LoadImage`` without the warnings MONAI emits on every construction when nvImageCodec (GPU) is absent.

    ``LoadImage`` always instantiates all its default readers, among them ``NvImgCodecPydicomReader``, which warns
    that the optional GPU decoder is missing; this loader never uses that reader.
    """
    nv_logger = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    level = nv_logger.level
    nv_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader")
            return LoadImage(reader=reader, image_only=True, ensure_channel_first=True, dtype=dtype)
    finally:
        nv_logger.setLevel(level)


class LoadMedicalImage(Transform):
    """Load a DICOM file or series, a NIfTI, PNG, JPEG or TIFF file, or an in-memory array, channel-first, float32.

    The reader is chosen from what the input is: a folder, a list of files, a ``.dcm``/``.dicom``/``.ima`` file or
    any file with the ``DICM`` preamble -> :class:`~medsyn_monai.data.DicomSeriesReader` (series ordered by slice
    position, CT in HU); ``.nii``/``.nii.gz`` -> ``NibabelReader``; ``.png``/``.jpg``/``.jpeg`` -> ``PILReader``
    (16-bit PNG keeps its values); ``.tif``/``.tiff`` -> :class:`TiffReader` (8/16-bit, grey or RGB; a single page
    loads exactly as a PNG of the same pixels, a multi-page stack as a volume ``(C, W, H, pages)``); a
    ``numpy.ndarray`` or tensor (e.g. a MedMNIST sample) -> ``(H, W)`` becomes ``(1, W, H)``, ``(H, W, 3)`` becomes
    ``(3, W, H)`` and ``(D, H, W)`` becomes ``(1, W, H, D)``, i.e. MONAI's (x, y[, z]) axis order.

    Images holding NaN or infinite values are bad files (:class:`~medsyn_monai.data.BadFileError`), like unreadable
    ones, so ``skip_bad_files`` skips and reports them.

    The result is a float32 :class:`monai.data.MetaTensor` whose meta data also holds ``source_format`` (a
    :class:`~medsyn_monai.utils.enums.SourceFormat` value), ``filename_or_obj``, ``bit_depth`` (8 or 16 for PNG/JPEG
    from the Pillow mode, ``BitsPerSample`` for unsigned TIFF, ``BitsStored`` for DICOM, 8/16 for uint8/uint16
    arrays, else ``None``; ``ScaleToRange(source="auto")`` scales ``[0, 2**bit_depth - 1]``), ``modality`` and
    ``photometric_interpretation`` (DICOM; ``"MONOCHROME1"`` for a MINISWHITE TIFF; else ``None``) and ``spacing``.

    Args:
        dtype: output dtype.
        affine_lps_to_ras: convert DICOM affines from LPS to RAS (as NIfTI).

    Example:
        >>> img = LoadMedicalImage()(np.zeros((28, 32), dtype=np.uint8), name="train_0")
        >>> tuple(img.shape), img.dtype, img.meta["source_format"], img.meta["bit_depth"]
        ((1, 32, 28), torch.float32, 'npz', 8)
    """

    def __init__(self, dtype: Any = np.float32, affine_lps_to_ras: bool = True) -> None:
        self.dtype = dtype
        self.dicom_reader = DicomSeriesReader(affine_lps_to_ras=affine_lps_to_ras)
        self.nifti_reader = NibabelReader()
        self.pil_reader = PILReader(converter=_pil_converter)
        self.tiff_reader = TiffReader()
        self._load = _quiet_load_image(self.dicom_reader, dtype)

    def __call__(self, source: Any, name: str | None = None) -> MetaTensor:
        """Load ``source``.

        Args:
            source: a path (file or DICOM folder), a sequence of DICOM files (one series), or an array/tensor.
            name: what to record as ``filename_or_obj`` (and name in errors) for an in-memory array.

        Returns:
            the channel-first image.

        Raises:
            BadFileError: any failure, with ``stage="load"`` and the original exception chained.
        """
        if isinstance(source, (np.ndarray, torch.Tensor)):
            return self._from_array(source, name)
        if isinstance(source, (list, tuple)):
            if not source:
                raise BadFileError(name or "<empty list>", "empty list of files", stage="load")
            files = [str(s) for s in source]
            source = files[0] if len(files) == 1 else files
        elif isinstance(source, (str, os.PathLike)):
            source = str(source)
        else:
            raise BadFileError(
                name or repr(source), f"cannot load an object of type {type(source).__name__}", stage="load"
            )
        where = source if isinstance(source, str) else source[0]
        fmt: SourceFormat | None = None
        try:
            fmt = source_format_of(source)
            if isinstance(source, str) and not os.path.exists(source):
                raise BadFileError(source, "file not found", stage="load")
            if fmt in (SourceFormat.DICOM, SourceFormat.DICOM_SERIES):
                reader: Any = self.dicom_reader
            elif fmt == SourceFormat.NIFTI:
                reader = self.nifti_reader
            elif fmt == SourceFormat.TIFF:
                reader = self.tiff_reader
            else:
                reader = self.pil_reader
            img = self._load(source, reader=reader)
        except BadFileError as e:
            if e.stage == "load":
                raise
            raise BadFileError(e.path, e.reason, stage="load") from e
        except Exception as e:
            raise BadFileError(where, _describe_error(e, fmt), stage="load") from e
        if not isinstance(img, MetaTensor):
            img = MetaTensor(img)
        _check_finite(img.as_tensor(), where)
        meta = img.meta
        meta["source_format"] = str(fmt)
        if fmt in (SourceFormat.PNG, SourceFormat.JPEG):
            meta["bit_depth"] = _bit_depth_of_mode(meta.get("mode"))
        elif fmt not in (SourceFormat.DICOM, SourceFormat.DICOM_SERIES, SourceFormat.TIFF):
            meta["bit_depth"] = None
        for key in ("bit_depth", "modality", "photometric_interpretation"):
            value = meta.get(key)
            meta[key] = None if value in (None, "none", "") else value
        if "spacing" not in meta:
            meta["spacing"] = affine_to_spacing(img.affine, r=img.ndim - 1)
        return img

    def _from_array(self, source: np.ndarray | torch.Tensor, name: str | None) -> MetaTensor:
        label = name or "<array>"
        try:
            arr = source.detach().cpu().numpy() if isinstance(source, torch.Tensor) else np.asarray(source)
            bit_depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(arr.dtype)
            out = np.ascontiguousarray(_array_to_channel_first(arr)).astype(self.dtype, copy=False)
        except Exception as e:
            raise BadFileError(label, f"invalid image array: {e}", stage="load") from e
        meta = {
            "source_format": str(SourceFormat.NPZ),
            "filename_or_obj": label,
            "bit_depth": bit_depth,
            "modality": None,
            "photometric_interpretation": None,
            "spacing": np.ones(out.ndim - 1),
        }
        image = torch.from_numpy(np.array(out, copy=True))
        _check_finite(image, label)
        return MetaTensor(image, meta=meta)


class LoadMedicalImaged(MapTransform):
    """Dictionary version of :class:`LoadMedicalImage`.

    Args:
        keys: keys of the items to load.
        name_key: key of the item whose value names in-memory arrays (``filename_or_obj`` and errors).
        dtype: output dtype.
        affine_lps_to_ras: convert DICOM affines from LPS to RAS.
        allow_missing_keys: don't raise when a key is missing.

    Example:
        >>> d = LoadMedicalImaged("image")({"image": np.ones((4, 6, 3), np.uint8), "case_id": "c1"})
        >>> tuple(d["image"].shape), d["image"].meta["filename_or_obj"]
        ((3, 6, 4), 'c1')
    """

    def __init__(
        self,
        keys: KeysCollection,
        name_key: str | None = "case_id",
        dtype: Any = np.float32,
        affine_lps_to_ras: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.name_key = name_key
        self.loader = LoadMedicalImage(dtype=dtype, affine_lps_to_ras=affine_lps_to_ras)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Load every key of ``data``.

        Args:
            data: a record, e.g. from :class:`~medsyn_monai.data.ImageCollection`.

        Returns:
            a copy of ``data`` with the images loaded.

        Raises:
            BadFileError: see :class:`LoadMedicalImage`.
        """
        d = dict(data)
        name = d.get(self.name_key) if self.name_key is not None else None
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key], name=None if name is None else str(name))
        return d
