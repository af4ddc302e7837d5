"""Load any supported medical image (DICOM file or series, NIfTI, PNG, JPEG, in-memory array) as a MetaTensor."""

from __future__ import annotations

import logging
import os
import warnings
import zlib
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor, NibabelReader, PILReader
from monai.data.utils import affine_to_spacing
from monai.transforms import LoadImage, MapTransform, Transform

from medsyn_monai.data.dicom_reader import DICOM_SUFFIXES, DicomSeriesReader, is_dicom_file
from medsyn_monai.data.errors import BadFileError
from medsyn_monai.utils.enums import SourceFormat

__all__ = ["LoadMedicalImage", "LoadMedicalImaged"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
PNG_SUFFIXES = (".png",)
JPEG_SUFFIXES = (".jpg", ".jpeg")

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
        >>> str(source_format_of("scan.nii.gz")), str(source_format_of("xray.PNG"))
        ('nifti', 'png')
    """
    if isinstance(path, (list, tuple)):
        if len(path) == 1:
            return source_format_of(path[0])
        return SourceFormat.DICOM_SERIES
    p = Path(path)
    name = p.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return SourceFormat.NIFTI
    if name.endswith(PNG_SUFFIXES):
        return SourceFormat.PNG
    if name.endswith(JPEG_SUFFIXES):
        return SourceFormat.JPEG
    if name.endswith(DICOM_SUFFIXES):
        return SourceFormat.DICOM
    if p.is_dir():
        return SourceFormat.DICOM_SERIES
    if not p.exists():
        raise BadFileError(p, "file not found", stage="load")
    if is_dicom_file(p):
        return SourceFormat.DICOM
    raise BadFileError(
        p, f"unsupported file type {p.suffix or '(no suffix)'!r}: expected DICOM, NIfTI, PNG or JPEG", stage="load"
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
    """Load a DICOM file or series, a NIfTI, PNG or JPEG file, or an in-memory array, channel-first, float32.

    The reader is chosen from what the input is: a folder, a list of files, a ``.dcm``/``.dicom``/``.ima`` file or
    any file with the ``DICM`` preamble -> :class:`~medsyn_monai.data.DicomSeriesReader` (series ordered by slice
    position, CT in HU); ``.nii``/``.nii.gz`` -> ``NibabelReader``; ``.png``/``.jpg``/``.jpeg`` -> ``PILReader``
    (16-bit PNG keeps its values); a ``numpy.ndarray`` or tensor (e.g. a MedMNIST sample) -> ``(H, W)`` becomes
    ``(1, W, H)``, ``(H, W, 3)`` becomes ``(3, W, H)`` and ``(D, H, W)`` becomes ``(1, W, H, D)``, i.e. MONAI's
    (x, y[, z]) axis order.

    The result is a float32 :class:`monai.data.MetaTensor` whose meta data also holds ``source_format`` (a
    :class:`~medsyn_monai.utils.enums.SourceFormat` value), ``filename_or_obj``, ``bit_depth`` (8 or 16 for PNG/JPEG
    from the Pillow mode, ``BitsStored`` for DICOM, 8/16 for uint8/uint16 arrays, else ``None``), ``modality`` and
    ``photometric_interpretation`` (DICOM, else ``None``) and ``spacing``.

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
        meta = img.meta
        meta["source_format"] = str(fmt)
        if fmt in (SourceFormat.PNG, SourceFormat.JPEG):
            meta["bit_depth"] = _bit_depth_of_mode(meta.get("mode"))
        elif fmt not in (SourceFormat.DICOM, SourceFormat.DICOM_SERIES):
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
        return MetaTensor(torch.from_numpy(np.array(out, copy=True)), meta=meta)


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
