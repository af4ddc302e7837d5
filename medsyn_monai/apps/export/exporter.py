"""Export synthetic images from a trained model as PNG, NIfTI and DICOM marked synthetic, with a provenance manifest."""

from __future__ import annotations

import datetime
import importlib.metadata
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import SaveImage

from medsyn_monai.apps.export.dicom import SIXTEEN_BIT_MODALITIES, SyntheticDicomWriter
from medsyn_monai.apps.generation import DiffusionSampler
from medsyn_monai.networks.schedulers import scheduler_name
from medsyn_monai.utils.enums import ExportFormat
from medsyn_monai.utils.io import file_sha256, write_csv, write_json
from medsyn_monai.utils.model_info import load_model_info

__all__ = ["SyntheticExporter", "MANIFEST_FIELDS"]

#: columns of ``manifest.csv`` (one row per file written); ``manifest.json`` holds the same rows
MANIFEST_FIELDS = (
    "file",
    "format",
    "class_name",
    "label",
    "index",
    "seed",
    "guidance_scale",
    "guidance_rescale",
    "scheduler",
    "num_inference_steps",
    "checkpoint",
    "checkpoint_sha256",
    "dp_epsilon",
    "dp_delta",
    "bundle",
    "medsyn_monai_version",
    "monai_version",
    "torch_version",
    "created_utc",
)


def _package_version() -> str:
    try:
        return importlib.metadata.version("medsyn_monai")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _safe_name(name: str) -> str:
    """A class name as a folder / file name part (letters, digits, ``-``, ``_``, ``.``)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return safe or "class"


class SyntheticExporter:
    """Generate ``num_samples_per_class`` images of each class of a trained model and write them to ``export_dir``
    as PNG, NIfTI and/or DICOM (``export_format``), with a provenance manifest (``manifest.csv`` and
    ``manifest.json``).

    Layout: ``export_dir/<format>/<class>/synthetic_<class>_<nnnnn>.<ext>`` (class folders, so that
    :class:`~medsyn_monai.data.ImageCollection` reads an export back as a labelled data set; an unconditional
    model's files lie in ``export_dir/<format>/``). Each class is sampled with its own seed (``seed`` + class
    index), so the images of a class do not depend on which other classes are exported. The manifest records, per
    file: class, seed, index, guidance scale and rescale, scheduler and steps, the checkpoint's file name and
    SHA-256, the privacy guarantee of a model trained with differential privacy (ε spent, δ), the bundle, the
    medsyn_monai, MONAI and PyTorch versions and the UTC time; no input path and nothing
    from any input header (the model never saw one).

    - PNG: 8-bit, or 16-bit for grey-scale images with ``png_bits=16`` (the default for CT and X-ray modalities).
    - NIfTI: float32 in the training intensity range (HU for CT), unit spacing (the model has no physical size).
    - DICOM: :class:`~medsyn_monai.apps.export.SyntheticDicomWriter` (Secondary Capture, ConversionType "SYN",
      one series per class, fresh UIDs per export, HU rescale for CT).

    Args:
        sampler: a :class:`~medsyn_monai.apps.generation.DiffusionSampler` of the trained model (e.g.
            ``DiffusionSampler.from_checkpoint``); its ``seed``, guidance and steps are used.
        export_dir: output folder; it must not hold files yet (an earlier export is never overwritten).
        export_format: ``"png"``, ``"nifti"``, ``"dicom"`` or ``"all"``.
        num_samples_per_class: images of each class (of an unconditional model: images in all).
        class_names: classes to export (default: every class of the model).
        modality: DICOM modality code (``"CT"``, ``"DX"``, ``"SM"``, ``"XC"``, ``"OT"``, ...).
        png_bits: 8 or 16 (grey-scale only); default 16 for :data:`SIXTEEN_BIT_MODALITIES`, else 8.
        model_info: the model's ``model_info.json`` (default: read from beside the sampler's checkpoint).

    Raises:
        FileExistsError: ``export_dir`` already holds files.
        ValueError: an unknown format or class, ``num_samples_per_class`` < 1, 16-bit PNG of colour images.
    """

    def __init__(
        self,
        sampler: DiffusionSampler,
        export_dir: str | os.PathLike,
        export_format: str | ExportFormat = ExportFormat.ALL,
        num_samples_per_class: int = 8,
        class_names: Sequence[str] | None = None,
        modality: str = "OT",
        png_bits: int | None = None,
        model_info: dict[str, Any] | None = None,
    ) -> None:
        try:
            fmt = ExportFormat(str(export_format).lower())
        except ValueError:
            raise ValueError(
                f"export_format must be one of {[f.value for f in ExportFormat]}, got {export_format!r}."
            ) from None
        self.formats = [ExportFormat.PNG, ExportFormat.NIFTI, ExportFormat.DICOM] if fmt == ExportFormat.ALL else [fmt]
        if int(num_samples_per_class) < 1:
            raise ValueError(f"num_samples_per_class must be >= 1, got {num_samples_per_class}.")
        self.sampler = sampler
        self.export_dir = Path(export_dir)
        self.num_samples_per_class = int(num_samples_per_class)
        self.modality = str(modality).upper()
        self.model_info = dict(model_info) if model_info is not None else load_model_info(sampler.ckpt_path)
        model_classes = sampler.class_names
        if class_names is not None and isinstance(class_names, str):
            class_names = [class_names]
        if class_names is not None and model_classes is None:
            raise ValueError(f"class_names {list(class_names)}: the model is unconditional (it has no classes).")
        if model_classes is not None:
            wanted = list(model_classes) if class_names is None else [str(c) for c in class_names]
            unknown = [c for c in wanted if c not in model_classes]
            if unknown or not wanted:
                raise ValueError(f"class_names {unknown or wanted}: not classes of the model {list(model_classes)}.")
            self.classes: list[tuple[int | None, str]] = [(model_classes.index(c), c) for c in dict.fromkeys(wanted)]
        else:
            self.classes = [(None, "")]
        channels = int(sampler.image_shape[0])
        if png_bits is None:
            png_bits = 16 if channels == 1 and self.modality in SIXTEEN_BIT_MODALITIES else 8
        if int(png_bits) not in (8, 16):
            raise ValueError(f"png_bits must be 8 or 16, got {png_bits}.")
        if int(png_bits) == 16 and channels != 1:
            raise ValueError(f"png_bits=16 needs grey-scale images; this model makes {channels}-channel images.")
        self.png_bits = int(png_bits)
        self.logger = logging.getLogger(__name__)

    def _check_export_dir(self) -> None:
        if self.export_dir.exists() and not self.export_dir.is_dir():
            raise FileExistsError(f"export_dir {self.export_dir} is a file, not a folder: choose another export_dir.")
        if self.export_dir.is_dir() and any(self.export_dir.iterdir()):
            raise FileExistsError(
                f"export_dir {self.export_dir} already holds files (an earlier export?): move it aside, or pass "
                "another --export_dir; an export never overwrites one."
            )

    def common_fields(self) -> dict[str, Any]:
        """The manifest fields that all files of this export share."""
        sampler = self.sampler
        steps = sampler.num_inference_steps
        if steps is None:
            steps = int(sampler.scheduler.num_train_timesteps)
        privacy = self.model_info.get("differential_privacy") or {}
        return {
            "guidance_scale": sampler.guidance_scale,
            "guidance_rescale": float(getattr(sampler.inferer, "guidance_rescale", 0.0)),
            "scheduler": scheduler_name(sampler.scheduler),
            "num_inference_steps": int(steps),
            "checkpoint": sampler.ckpt_path.name,
            "checkpoint_sha256": file_sha256(sampler.ckpt_path),
            "dp_epsilon": privacy.get("epsilon_spent", ""),
            "dp_delta": privacy.get("delta", ""),
            "bundle": self.model_info.get("bundle", ""),
            "medsyn_monai_version": _package_version(),
            "monai_version": monai.__version__,
            "torch_version": torch.__version__,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def run(self) -> list[dict[str, Any]]:
        """Load the weights, generate, write every file and the manifest; return the manifest rows."""
        self._check_export_dir()
        self.sampler.load_weights()
        common = self.common_fields()
        bundle = str(common["bundle"] or "model")
        model = f"{bundle} {common['checkpoint']} sha256 {common['checkpoint_sha256'][:16]}, {common['scheduler']} "
        model += f"{common['num_inference_steps']} steps, guidance {common['guidance_scale']:g}"
        dicom = SyntheticDicomWriter(bundle, model, self.modality, self.model_info.get("intensity_range"))
        lo, hi = self.sampler.nifti_range
        savers = {
            ExportFormat.PNG: (
                np.uint8 if self.png_bits == 8 else np.uint16,
                255 if self.png_bits == 8 else 65535,
                ".png",
            ),
            ExportFormat.NIFTI: (np.float32, None, ".nii.gz"),
        }
        rows: list[dict[str, Any]] = []
        self.export_dir.mkdir(parents=True, exist_ok=True)
        for label, class_name in self.classes:
            seed = self.sampler.seed + (label or 0)
            labels = None if label is None else [label] * self.num_samples_per_class
            images, _ = self.sampler.generate(num_samples=self.num_samples_per_class, labels=labels, seed=seed)
            folder = _safe_name(class_name) if class_name else ""
            for index in range(images.shape[0]):
                image = images[index]
                stem = f"synthetic_{_safe_name(class_name)}_{index:05d}" if class_name else f"synthetic_{index:05d}"
                for fmt in self.formats:
                    target = self.export_dir / fmt.value / folder
                    if fmt == ExportFormat.DICOM:
                        path = dicom.write(image.numpy(), target / f"{stem}.dcm", class_name or None, seed)
                    else:
                        dtype, scale, ext = savers[fmt]
                        values = (image + 1) / 2 if fmt == ExportFormat.PNG else lo + (image + 1) / 2 * (hi - lo)
                        meta = {"filename_or_obj": stem, "spatial_shape": np.array(image.shape[1:]),
                                "original_affine": np.eye(4)}  # fmt: skip
                        writer = SaveImage(output_dir=target, output_ext=ext, output_dtype=dtype, scale=scale,
                                           output_postfix="", separate_folder=False, resample=True,
                                           print_log=False)  # fmt: skip
                        writer(MetaTensor(values, affine=torch.eye(4, dtype=torch.float64), meta=meta))
                        path = target / f"{stem}{ext}"
                    rows.append({"file": path.relative_to(self.export_dir).as_posix(), "format": fmt.value,
                                 "class_name": class_name, "label": "" if label is None else label, "index": index,
                                 "seed": seed, **common})  # fmt: skip
            self.logger.info(f"exported {images.shape[0]} {class_name or 'unconditional'} image(s) {self.formats}")
        self.write_manifest(rows, common)
        self.logger.info(f"wrote {len(rows)} files and manifest.csv/json to {self.export_dir}")
        return rows

    def write_manifest(self, rows: list[dict[str, Any]], common: dict[str, Any]) -> None:
        """``manifest.csv`` (one row per file) and ``manifest.json`` (the shared fields and the files)."""
        write_csv(self.export_dir / "manifest.csv", rows, MANIFEST_FIELDS)
        shared = {**common, "modality": self.modality, "formats": [f.value for f in self.formats],
                  "num_samples_per_class": self.num_samples_per_class, "png_bits": self.png_bits,
                  "image_size": list(self.sampler.image_shape[1:]), "synthetic": True,
                  "differential_privacy": self.model_info.get("differential_privacy")}  # fmt: skip
        files = [{k: r[k] for k in ("file", "format", "class_name", "label", "index", "seed")} for r in rows]
        write_json(self.export_dir / "manifest.json", {"export": shared, "files": files})
