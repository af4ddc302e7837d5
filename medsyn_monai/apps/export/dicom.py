"""Synthetic images as DICOM Secondary Capture instances that say, in every place a reader looks, that they are
synthetic: written with highdicom, nothing taken from any input header."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.uid import generate_uid

from medsyn_monai.utils.io import atomic_write

PYDICOM_3 = int(pydicom.__version__.split(".")[0]) >= 3

__all__ = ["SyntheticDicomWriter", "SYNTHETIC_CONVERSION_TYPE"]

#: ConversionType (0008,0064) of a synthetic image (PS3.3 C.8.6.1: "SYN" = synthetic image); highdicom's SCImage
#: hard-codes "DI" (digital interface), so it is set after construction
SYNTHETIC_CONVERSION_TYPE = "SYN"
#: modalities whose images are written with 16 bits (the others with 8)
SIXTEEN_BIT_MODALITIES = ("CT", "DX", "CR", "MR", "PT", "NM", "MG", "RF", "XA")


class SyntheticDicomWriter:
    """Write synthetic 2D images (one Secondary Capture instance each) with highdicom, one series per class.

    Each export gets fresh Study/Series/SOP Instance UIDs; the patient is ``SYNTHETIC^<bundle>`` (ID
    ``SYNTHETIC-<bundle>``), with ``PatientIdentityRemoved`` YES, ``ConversionType`` "SYN", ``BurnedInAnnotation``
    NO, ``ImageType`` DERIVED\\SECONDARY, and ``DeidentificationMethod``, ``SeriesDescription`` and
    ``ImageComments`` that state the image is synthetic and name the generating model and seed. No value is
    copied from any input: the writer never sees one.

    Intensities: a CT model's images (``intensity_range`` in HU, e.g. the training window) are stored as 16-bit
    integers with ``RescaleIntercept`` = the low end of the range, ``RescaleSlope`` 1, ``RescaleType`` HU and the
    window as ``WindowCenter``/``WindowWidth``, so viewers show HU; other grey-scale modalities of
    :data:`SIXTEEN_BIT_MODALITIES` use the full 16-bit range, everything else (RGB, microscopy, photographs) 8 bits.

    Args:
        bundle: name of the generating bundle (patient name and descriptions).
        model_description: the generating model, e.g. ``"cxr_cfg model.pt sha256 1f2e...; DDIM 50 steps"``.
        modality: DICOM modality code of the series (``"CT"``, ``"DX"``, ``"SM"``, ``"XC"``, ...; default ``"OT"``).
        intensity_range: the values that the model's [-1, 1] stands for (for CT: HU); only CT uses it.
        manufacturer: Manufacturer (0008,0070) of the instances.

    Example:
        >>> import tempfile, pydicom
        >>> writer = SyntheticDicomWriter("ct_lightweight", "tiny model", modality="CT",
        ...                               intensity_range=(-160.0, 240.0))
        >>> path = writer.write(np.zeros((1, 8, 8), np.float32), tempfile.mkdtemp() + "/a.dcm", "lesion", seed=0)
        >>> ds = pydicom.dcmread(path)
        >>> ds.ConversionType, ds.PatientIdentityRemoved, ds.RescaleType, float(ds.RescaleIntercept)
        ('SYN', 'YES', 'HU', -160.0)
        >>> int(ds.pixel_array[0, 0]) + float(ds.RescaleIntercept)  # 0 in [-1, 1] is the middle of the window
        40.0
    """

    def __init__(
        self,
        bundle: str,
        model_description: str,
        modality: str = "OT",
        intensity_range: Sequence[float] | None = None,
        manufacturer: str = "medsyn_monai",
    ) -> None:
        modality = str(modality).upper()
        if not modality.isalnum() or len(modality) > 16:
            raise ValueError(f"modality must be a DICOM modality code such as 'CT', 'DX' or 'OT', got {modality!r}.")
        if modality == "CT" and intensity_range is None:
            raise ValueError("a CT export needs intensity_range (the HU that [-1, 1] stands for, in model_info.json).")
        if intensity_range is not None:
            lo, hi = (float(v) for v in intensity_range)
            if not hi > lo:
                raise ValueError(f"intensity_range must be (low, high) with high > low, got {list(intensity_range)}.")
            self.intensity_range: tuple[float, float] | None = (lo, hi)
        else:
            self.intensity_range = None
        self.bundle = str(bundle)
        self.model_description = str(model_description)
        self.modality = modality
        self.manufacturer = manufacturer
        self.study_uid = generate_uid()
        self.series: dict[str, tuple[str, int]] = {}  # class name -> (Series Instance UID, series number)
        self.instances: dict[str, int] = {}  # class name -> instances written
        now = datetime.datetime.now(datetime.timezone.utc)
        self.study_date, self.study_time = now.date(), now.time().replace(tzinfo=None)

    def _pixels(self, image: np.ndarray) -> tuple[np.ndarray, str, int]:
        """``(C, X, Y)`` in [-1, 1] -> the pixel array (rows, columns[, 3]), photometric interpretation, bits."""
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"expected one 2D image (C, H, W) with 1 or 3 channels, got shape {tuple(image.shape)}.")
        unit = (np.clip(np.asarray(image, np.float64), -1.0, 1.0) + 1.0) / 2.0
        unit = np.moveaxis(unit, 0, -1).swapaxes(0, 1)  # MONAI's (X, Y) arrays are the transposed rows x columns
        if image.shape[0] == 3:
            return np.round(unit * 255).astype(np.uint8), "RGB", 8
        unit = unit[..., 0]
        if self.modality == "CT":
            assert self.intensity_range is not None
            lo, hi = self.intensity_range
            return np.round(unit * (hi - lo)).astype(np.uint16), "MONOCHROME2", 16
        if self.modality in SIXTEEN_BIT_MODALITIES:
            return np.round(unit * 65535).astype(np.uint16), "MONOCHROME2", 16
        return np.round(unit * 255).astype(np.uint8), "MONOCHROME2", 8

    def write(self, image: np.ndarray, path: str | Path, class_name: str | None, seed: int) -> Path:
        """Write one image ``(C, H, W)`` in [-1, 1] (as sampled) to ``path`` (atomically), in the series of
        ``class_name``; ``seed`` is the sampling seed, stated in the image comments."""
        pixels, photometric, bits = self._pixels(np.asarray(image))
        key = class_name or ""
        if key not in self.series:
            self.series[key] = (generate_uid(), len(self.series) + 1)
        series_uid, series_number = self.series[key]
        self.instances[key] = self.instances.get(key, 0) + 1
        what = f"class {class_name}" if class_name else "unconditional"
        ds = hd.sc.SCImage(
            pixel_array=pixels,
            photometric_interpretation=photometric,
            bits_allocated=bits,
            coordinate_system="PATIENT",
            study_instance_uid=self.study_uid,
            series_instance_uid=series_uid,
            series_number=series_number,
            sop_instance_uid=generate_uid(),
            instance_number=self.instances[key],
            manufacturer=self.manufacturer,
            patient_id=f"SYNTHETIC-{self.bundle}"[:64],
            patient_name=f"SYNTHETIC^{self.bundle}",
            patient_orientation=("L", "P"),
            study_id="SYNTHETIC",
            study_date=self.study_date,
            study_time=self.study_time,
        )
        ds.ConversionType = SYNTHETIC_CONVERSION_TYPE
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.Modality = self.modality
        ds.BurnedInAnnotation = "NO"
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "synthetic image: generated by a diffusion model, no patient"
        ds.StudyDescription = f"Synthetic images ({self.bundle})"[:64]
        ds.SeriesDescription = f"SYNTHETIC {what}"[:64]
        ds.ImageComments = (
            f"SYNTHETIC image generated by a diffusion model, not an image of a patient. Model: "
            f"{self.model_description}. Seed: {int(seed)}. {what.capitalize()}."
        )[:10240]
        if self.modality == "CT":
            assert self.intensity_range is not None
            lo, hi = self.intensity_range
            ds.RescaleIntercept = f"{lo:g}"
            ds.RescaleSlope = "1"
            ds.RescaleType = "HU"
            ds.WindowCenter = f"{(lo + hi) / 2:g}"
            ds.WindowWidth = f"{hi - lo:g}"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # a DICOM file with its File Meta header: pydicom >= 3 spells it enforce_file_format, pydicom 2 (MONAI Label's
        # environment) write_like_original=False
        options = {"enforce_file_format": True} if PYDICOM_3 else {"write_like_original": False}
        return atomic_write(path, lambda tmp: ds.save_as(tmp, **options))
