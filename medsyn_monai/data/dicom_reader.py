"""A :class:`monai.data.PydicomReader` that orders DICOM series by slice position and explains bad files."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from monai.data import PydicomReader
from monai.data.image_reader import _copy_compatible_dict, _stack_images
from monai.data.utils import affine_to_spacing
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from medsyn_monai.data.errors import BadFileError

__all__ = ["DicomSeriesReader"]

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # PixelData, FloatPixelData, DoubleFloatPixelData

# transfer syntax UID -> what to install to decode it
_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg and pylibjpeg-libjpeg (or pillow)",
    "1.2.840.10008.1.2.4.51": "pylibjpeg and pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg and pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg and pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pyjpegls (or pylibjpeg and pylibjpeg-libjpeg)",
    "1.2.840.10008.1.2.4.81": "pyjpegls (or pylibjpeg and pylibjpeg-libjpeg)",
    "1.2.840.10008.1.2.4.90": "pylibjpeg and pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg and pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pylibjpeg and pylibjpeg-openjpeg>=2.0",
    "1.2.840.10008.1.2.4.202": "pylibjpeg and pylibjpeg-openjpeg>=2.0",
    "1.2.840.10008.1.2.4.203": "pylibjpeg and pylibjpeg-openjpeg>=2.0",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle (numpy alone decodes it slowly)",
}
_UNSUPPORTED_SYNTAXES = {f"1.2.840.10008.1.2.4.{k}" for k in (94, 95, *range(100, 109))}  # JPIP, MPEG, H.264, HEVC
_POSITION_TOL_MM = 1e-3


def _decoder_hint(ds: Any) -> str:
    """Name the transfer syntax of ``ds`` and the package(s) that decode it."""
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid is None:
        return "unknown transfer syntax (no (0002,0010) in the file meta)"
    if str(uid) in _UNSUPPORTED_SYNTAXES:
        return (
            f"transfer syntax {uid.name} ({uid}), which pydicom cannot decode; convert the file to an uncompressed "
            "transfer syntax (e.g. `gdcmconv --raw in.dcm out.dcm` or dcmtk's `dcmdjpeg`)"
        )
    pkg = _DECODER_PACKAGES.get(str(uid))
    if pkg is None:
        pkg = "pylibjpeg with its plugins (pylibjpeg-libjpeg, pylibjpeg-openjpeg), pyjpegls or gdcm"
    return f"transfer syntax {uid.name} ({uid}); install {pkg}"


def describe_pixel_error(ds: Any, err: BaseException) -> str:
    """Turn an exception raised while decoding the pixels of ``ds`` into a short human reason.

    Args:
        ds: the pydicom dataset.
        err: the exception raised by ``ds.pixel_array``.

    Returns:
        e.g. ``"truncated: pixel data has 100 bytes, expected 32768"``.
    """
    msg = str(err)
    m = re.search(r"less than expected \((\d+) vs (\d+) bytes\)", msg)
    if m:
        return f"truncated: pixel data has {m.group(1)} bytes, expected {m.group(2)}"
    if not any(t in ds for t in _PIXEL_TAGS):
        return "no pixel data"
    lowered = msg.lower()
    if "unable to decode" in lowered or "no pixel data decoders" in lowered or "plugin" in lowered:
        first = msg.strip().splitlines()[0] if msg.strip() else type(err).__name__
        return f"cannot decode pixel data with {_decoder_hint(ds)} ({first})"
    return f"cannot read pixel data: {type(err).__name__}: {msg.strip().splitlines()[0] if msg.strip() else ''}"


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file starting with the DICOM preamble (``DICM`` at byte 128)."""
    try:
        return os.path.isfile(path) and pydicom.misc.is_dicom(os.fspath(path))
    except OSError:
        return False


class DicomSeriesReader(PydicomReader):
    """Read a DICOM file, a folder holding one DICOM series, or a list of files forming one series.

    Differences from :class:`monai.data.PydicomReader`:

    - slices are ordered by ``ImagePositionPatient`` projected on the slice normal (cross product of the two
      ``ImageOrientationPatient`` direction cosines), never by file name or ``InstanceNumber``;
    - the slice spacing is the median distance between consecutive projected positions (``spacing`` meta), and the
      affine uses the position of the last slice in that order;
    - a list of files is read as ONE series (not stacked as channels);
    - every failure is a :class:`~medsyn_monai.data.BadFileError` naming the file: missing position/orientation in a
      multi-slice series, duplicate positions, different shapes, several series in one folder, missing or truncated
      pixel data, undecodable compression (naming the transfer syntax and the package to install);
    - multi-frame files stack their frames on the last spatial axis and colour images keep their channel axis last;
    - the meta data also holds ``bit_depth`` (``BitsStored``), ``modality`` and ``photometric_interpretation``.

    ``RescaleSlope``/``RescaleIntercept`` are applied as in MONAI (float32 output), so CT is in Hounsfield units.
    Spatial axes are returned in MONAI's (x, y[, z]) order (``swap_ij=True``).

    Args:
        channel_dim: see :class:`monai.data.PydicomReader`.
        affine_lps_to_ras: convert the affine from LPS to RAS (as ``NibabelReader``).
        swap_ij: swap the first two spatial axes (rows, columns) -> (x, y).
        prune_metadata: keep only the affine-related DICOM tags in the meta data.
        kwargs: passed to ``pydicom.dcmread``.

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> reader = DicomSeriesReader()
        >>> img, meta = reader.get_data(reader.read(get_testdata_file("CT_small.dcm")))
        >>> img.shape, img.dtype, meta["bit_depth"], meta["modality"]
        ((128, 128), dtype('float32'), 16, 'CT')
    """

    def __init__(
        self,
        channel_dim: str | int | None = None,
        affine_lps_to_ras: bool = True,
        swap_ij: bool = True,
        prune_metadata: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("to_gpu", None)
        super().__init__(
            channel_dim=channel_dim,
            affine_lps_to_ras=affine_lps_to_ras,
            swap_ij=swap_ij,
            prune_metadata=prune_metadata,
            fname_regex=None,  # type: ignore[arg-type]  # MONAI reads None as "no file-name filter"
            to_gpu=False,
            **kwargs,
        )

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """Accept folders, ``.dcm``/``.dicom``/``.ima`` files, files without suffix and files with a DICOM preamble.

        Args:
            filename: a path or a sequence of paths (all must be accepted).

        Returns:
            whether this reader should read ``filename``.

        Example:
            >>> r = DicomSeriesReader()
            >>> r.verify_suffix("a.DCM"), r.verify_suffix("IM0001"), r.verify_suffix("a.png")
            (True, True, False)
        """
        for name in ensure_tuple(filename):
            path = Path(f"{name}")
            if path.is_dir() or path.suffix.lower() in DICOM_SUFFIXES or path.suffix == "" or is_dicom_file(path):
                continue
            return False
        return True

    def _dcmread(self, name: str, **kwargs: Any) -> Any:
        try:
            return pydicom.dcmread(name, **kwargs)
        except pydicom.errors.InvalidDicomError as e:
            raise BadFileError(name, "not a DICOM file (no 'DICM' preamble at byte 128)", stage="load") from e
        except FileNotFoundError as e:
            raise BadFileError(name, "file not found", stage="load") from e
        except Exception as e:
            raise BadFileError(name, f"unreadable DICOM file: {type(e).__name__}: {e}", stage="load") from e

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs: Any) -> Any:
        """Read the DICOM header(s) (and pixel data, decoded later in :meth:`get_data`).

        Args:
            data: one file, one folder (all DICOM files directly inside are one series), or a sequence of files
                forming one series.
            kwargs: additional args for ``pydicom.dcmread``, overriding the constructor's.

        Returns:
            a pydicom dataset for a single file, or a list of datasets for a series.

        Raises:
            BadFileError: for a file that is not DICOM or cannot be read, an empty folder, a folder with several
                series, or several folders.
        """
        names = [f"{n}" for n in ensure_tuple(data)]
        kwargs_ = {**self.kwargs, **kwargs}
        if not names:
            raise ValueError("DicomSeriesReader.read: no file given.")
        if len(names) == 1 and Path(names[0]).is_dir():
            folder = names[0]
            names = sorted(f for f in glob.glob(os.path.join(folder, "*")) if is_dicom_file(f))
            if not names:
                raise BadFileError(folder, "folder holds no DICOM file", stage="load")
        elif any(Path(n).is_dir() for n in names):
            raise ValueError(f"DicomSeriesReader.read: give one folder or a list of files, got {names}.")
        datasets = [self._dcmread(n, **kwargs_) for n in names]
        uids = {str(getattr(ds, "SeriesInstanceUID", "")) for ds in datasets}
        if len(names) > 1 and len(uids) > 1:
            where = os.path.dirname(names[0])
            raise BadFileError(
                where,
                f"{len(uids)} different DICOM series (SeriesInstanceUID) among {len(names)} files; "
                "give the files of one series",
                stage="load",
            )
        self.filenames = list(names)
        self.has_series = len(datasets) > 1
        return datasets if self.has_series else datasets[0]

    def _get_array_data(self, img: Any, filename: Any) -> np.ndarray:
        """Decode the pixels of one dataset, apply the rescale (HU for CT), frames on the last axis.

        Raises:
            BadFileError: no pixel data, truncated pixel data, or undecodable compression.
        """
        if not any(t in img for t in _PIXEL_TAGS):
            hint = "" if "Rows" in img else " (the header is incomplete: the file may be truncated)"
            raise BadFileError(filename, f"no pixel data{hint}", stage="load")
        try:
            data = super()._get_array_data(img, filename)  # MONAI applies RescaleSlope/Intercept (float32)
        except BadFileError:
            raise
        except Exception as e:
            raise BadFileError(filename, describe_pixel_error(img, e), stage="load") from e
        if data.dtype == np.float64 and 0x7FE00010 in img:
            data = data.astype(np.float32)  # pydicom's DSfloat slope promotes MONAI's float32 rescale to float64
        if int(getattr(img, "NumberOfFrames", 1) or 1) > 1:  # (frames, rows, cols[, samples]) -> rows, cols, frames
            data = np.moveaxis(data, 0, 2)
        return data

    def _combine_dicom_series(self, data: Iterable[Any], filenames: Sequence[Any]) -> tuple[np.ndarray, dict]:
        """Stack the slices of one series, ordered by position along the slice normal.

        Args:
            data: pydicom datasets of one series.
            filenames: their file names (same order).

        Returns:
            the array (rows, cols, slices[, samples]) and its meta data, with ``spacing`` (row, column and median
            slice spacing), ``lastImagePositionPatient`` of the last slice in position order and ``spatial_shape``.

        Raises:
            BadFileError: missing ImagePositionPatient/ImageOrientationPatient, different orientation, duplicate
                positions, different shapes, or bad pixel data.
        """
        slices = list(zip(data, [f"{f}" for f in filenames], strict=True))
        if not slices:
            raise ValueError("the series holds no slice.")
        if len(slices) == 1:
            ds, name = slices[0]
            array = self._get_array_data(ds, name)
            meta = self._get_meta_dict(ds)
            meta[MetaKeys.SPATIAL_SHAPE] = _spatial_shape(ds, array)
            return array, meta
        for ds, name in slices:
            missing = [t for t in ("ImagePositionPatient", "ImageOrientationPatient") if t not in ds]
            if missing:
                raise BadFileError(
                    name,
                    f"slice of a {len(slices)}-slice series lacks {' and '.join(missing)}; cannot order the slices",
                    stage="load",
                )
        iop0 = np.asarray(slices[0][0].ImageOrientationPatient, dtype=np.float64)
        if iop0.shape != (6,) or not np.isfinite(iop0).all():
            raise BadFileError(slices[0][1], f"invalid ImageOrientationPatient {list(iop0)}", stage="load")
        normal = np.cross(iop0[:3], iop0[3:])
        if np.linalg.norm(normal) < 1e-6:
            raise BadFileError(slices[0][1], f"degenerate ImageOrientationPatient {list(iop0)}", stage="load")
        normal = normal / np.linalg.norm(normal)
        positions = []
        for ds, name in slices:
            iop = np.asarray(ds.ImageOrientationPatient, dtype=np.float64)
            if iop.shape != (6,) or not np.allclose(iop, iop0, atol=1e-3):
                raise BadFileError(
                    name,
                    f"ImageOrientationPatient {list(iop)} differs from {list(iop0)} of {slices[0][1]}",
                    stage="load",
                )
            ipp = np.asarray(ds.ImagePositionPatient, dtype=np.float64)
            if ipp.shape != (3,) or not np.isfinite(ipp).all():
                raise BadFileError(name, f"invalid ImagePositionPatient {list(ipp)}", stage="load")
            positions.append(float(ipp @ normal))
        order = np.argsort(np.asarray(positions), kind="stable")
        slices = [slices[i] for i in order]
        sorted_pos = np.asarray(positions)[order]
        steps = np.diff(sorted_pos)
        duplicates = np.flatnonzero(steps <= _POSITION_TOL_MM)
        if duplicates.size:
            k = int(duplicates[0])
            raise BadFileError(
                slices[k + 1][1],
                f"duplicate slice position {list(map(float, slices[k + 1][0].ImagePositionPatient))} "
                f"(same as {slices[k][1]})",
                stage="load",
            )
        first_ds, first_name = slices[0]
        first = self._get_array_data(first_ds, first_name)
        stack = np.empty(first.shape[:2] + (len(slices),) + first.shape[2:], dtype=first.dtype)
        stack[:, :, 0] = first
        for i, (ds, name) in enumerate(slices[1:], start=1):
            arr = self._get_array_data(ds, name)
            if arr.shape != first.shape:
                raise BadFileError(
                    name, f"slice shape {arr.shape} differs from {first.shape} of {first_name}", stage="load"
                )
            if arr.dtype != stack.dtype:
                stack = stack.astype(np.result_type(stack.dtype, arr.dtype))
            stack[:, :, i] = arr
        pixel_spacing = [float(v) for v in getattr(first_ds, "PixelSpacing", (1.0, 1.0))]
        meta = self._get_meta_dict(first_ds)
        meta["spacing"] = np.asarray(pixel_spacing[:2] + [float(np.median(steps))])
        meta["lastImagePositionPatient"] = np.asarray(slices[-1][0].ImagePositionPatient, dtype=np.float64)
        meta[MetaKeys.SPATIAL_SHAPE] = tuple(first.shape[:2]) + (len(slices),)
        meta["slice_filenames"] = [name for _, name in slices]
        return stack, meta

    def _get_meta_dict(self, img: Any) -> dict:
        """MONAI's DICOM meta data plus ``bit_depth``, ``modality`` and ``photometric_interpretation``."""
        meta = super()._get_meta_dict(img)
        bits = getattr(img, "BitsStored", None)
        meta["bit_depth"] = int(bits) if bits is not None else None
        modality = getattr(img, "Modality", None)
        meta["modality"] = str(modality) if modality else None
        pi = getattr(img, "PhotometricInterpretation", None)
        meta["photometric_interpretation"] = str(pi) if pi else None
        return meta

    def get_data(self, data: Any) -> tuple[np.ndarray, dict]:
        """Decode the pixels of what :meth:`read` returned and build the meta data (affine, spacing, ...).

        Args:
            data: a pydicom dataset (single file) or a list of datasets (one series).

        Returns:
            the array in (x, y[, z][, samples]) order and its meta data.

        Raises:
            BadFileError: see :meth:`_combine_dicom_series` and :meth:`_get_array_data`.
        """
        filenames = getattr(self, "filenames", None)
        if isinstance(data, (list, tuple)):
            names = list(filenames) if filenames is not None and len(filenames) == len(data) else [""] * len(data)
            data_array, metadata = self._combine_dicom_series(data, names)
            slice_spacing = float(metadata["spacing"][2]) if len(data) > 1 else None
        else:
            name = filenames[0] if filenames else ""
            data_array, metadata = self._combine_dicom_series([data], [name])
            slice_spacing = None
        n_spatial = len(metadata[MetaKeys.SPATIAL_SHAPE])
        if self.swap_ij:
            data_array = np.swapaxes(data_array, 0, 1)
        data_array = np.ascontiguousarray(data_array)
        if "lastImagePositionPatient" not in metadata and n_spatial == 3:  # multi-frame without positions
            metadata["spacing"] = np.asarray(
                [float(v) for v in metadata.get("00280030", {}).get("Value", (1.0, 1.0))] + [1.0]
            )
        if "00200037" in metadata and "00200032" in metadata:
            affine = self._get_affine(metadata, self.affine_lps_to_ras)
        else:  # e.g. projection X-ray: no patient geometry, a plain scaled grid (MONAI would warn on every file)
            pixel = [float(v) for v in metadata.get("00280030", {}).get("Value", (1.0, 1.0))][:2]
            affine = np.diag(pixel + [1.0] * (3 - len(pixel)) + [1.0])
            if n_spatial == 3 and slice_spacing is not None:
                affine[2, 2] = slice_spacing
        metadata[MetaKeys.SPACE] = SpaceKeys.RAS if self.affine_lps_to_ras else SpaceKeys.LPS
        if self.swap_ij:
            affine = affine @ np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
            sp_size = list(metadata[MetaKeys.SPATIAL_SHAPE])
            sp_size[0], sp_size[1] = sp_size[1], sp_size[0]
            metadata[MetaKeys.SPATIAL_SHAPE] = ensure_tuple(sp_size)
        metadata[MetaKeys.ORIGINAL_AFFINE] = affine
        metadata[MetaKeys.AFFINE] = affine.copy()
        if self.channel_dim is None:
            metadata[MetaKeys.ORIGINAL_CHANNEL_DIM] = float("nan") if data_array.ndim == n_spatial else -1
        else:
            metadata[MetaKeys.ORIGINAL_CHANNEL_DIM] = self.channel_dim
        spacing = affine_to_spacing(affine, r=n_spatial)
        if slice_spacing is not None:
            spacing[2] = slice_spacing  # median step along the normal, not the mean step of the affine
        metadata["spacing"] = spacing
        compatible: dict = {}
        _copy_compatible_dict(metadata, compatible)
        for key in ("bit_depth", "modality", "photometric_interpretation"):  # keep None (not MONAI's "none")
            compatible[key] = metadata.get(key)
        return _stack_images([data_array], compatible), compatible


def _spatial_shape(ds: Any, array: np.ndarray) -> tuple[int, ...]:
    """Spatial shape of a decoded single-file array (without the colour samples axis)."""
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    return tuple(array.shape[:-1]) if samples > 1 and array.ndim >= 3 else tuple(array.shape)
