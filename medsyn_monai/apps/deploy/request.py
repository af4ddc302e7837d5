"""What a generation request asks for, and where the trained model is: the parts of the MONAI Deploy application
that need no MONAI Deploy App SDK (tested in every environment)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from medsyn_monai.apps.export import SyntheticExporter
from medsyn_monai.apps.generation import DiffusionSampler
from medsyn_monai.networks.schedulers import DEFAULT_NUM_INFERENCE_STEPS, DEFAULT_SCHEDULER_TYPE
from medsyn_monai.utils.enums import ExportFormat
from medsyn_monai.utils.model_info import MODEL_INFO_NAME, load_model_info

__all__ = ["BUNDLE_MODALITY", "GenerationRequest", "find_model_file", "generate"]

#: DICOM modality of each bundle's images (the bundles' ``export.json``); other models: ``OT`` (other)
BUNDLE_MODALITY = {"ct_lightweight": "CT", "cxr_cfg": "DX", "cell_ddpm": "GM", "derm_dreambooth": "XC",
                   "histo_feature_aligned": "SM"}  # fmt: skip
MODEL_NAME = "model.pt"


def find_model_file(path: str | os.PathLike) -> Path:
    """The weights file of a trained bundle from what a user or a MONAI Application Package gives as the model path:
    ``models/model.pt`` itself, the ``models`` folder of a run (holding ``model.pt`` and ``model_info.json``), or a
    folder holding exactly one such folder (a MAP puts each model into ``/opt/holoscan/models/<name>/``).

    Raises:
        FileNotFoundError: nothing at ``path``, or no folder with ``model.pt`` and ``model_info.json`` there (the
            message says what the folder holds and what is expected).

    Example:
        >>> find_model_file("/no/such/models")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: /no/such/models does not exist: give the models folder of a trained bundle ...
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: give the models folder of a trained bundle (e.g. runs/ct_lightweight/models) "
            "with -m."
        )
    if path.is_file():
        candidates = [path.parent] if (path.parent / MODEL_INFO_NAME).is_file() else []
        name = path.name
    else:
        name = MODEL_NAME
        candidates = [path] + sorted(p for p in path.iterdir() if p.is_dir())
        candidates = [c for c in candidates if (c / MODEL_NAME).is_file() and (c / MODEL_INFO_NAME).is_file()]
    if not candidates:
        listing = sorted(p.name for p in path.iterdir())[:10] if path.is_dir() else [path.name]
        raise FileNotFoundError(
            f"{path} holds no trained model: expected {MODEL_NAME} beside {MODEL_INFO_NAME} (the models folder of a "
            f"bundle's training run, or a folder holding one such folder); found {listing}."
        )
    if len(candidates) > 1:
        raise FileNotFoundError(
            f"{path} holds {len(candidates)} models ({[c.name for c in candidates]}): give the folder of one."
        )
    return candidates[0] / name


@dataclass
class GenerationRequest:
    """What to generate: ``num_samples_per_class`` images of each of ``class_names`` (``None``: every class of the
    model), written as ``export_format`` (``dicom``, ``png``, ``nifti`` or ``all``) with DICOM ``modality``
    (``None``: the bundle's), sampled with ``seed``, ``guidance_scale``, the sampler ``scheduler_type``
    (:func:`~medsyn_monai.networks.schedulers.sampling_scheduler`) and ``num_inference_steps`` model evaluations.

    Example:
        >>> GenerationRequest.from_json('{"num_samples_per_class": 2, "class_names": ["lesion"]}').class_names
        ['lesion']
    """

    num_samples_per_class: int = 4
    class_names: list[str] | None = None
    export_format: str = ExportFormat.DICOM.value
    modality: str | None = None
    seed: int = 0
    guidance_scale: float = 1.0
    num_inference_steps: int = DEFAULT_NUM_INFERENCE_STEPS
    scheduler_type: str = DEFAULT_SCHEDULER_TYPE
    device: str = "cuda"

    @classmethod
    def from_json(cls, text: str, source: str = "request") -> GenerationRequest:
        """A request from JSON text (e.g. a request file given with ``-i``): unknown keys are an error."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source} is not valid JSON ({e}); expected e.g. {json.dumps(asdict(cls()))}") from e
        if not isinstance(data, dict):
            raise ValueError(f"{source} must hold a JSON object, e.g. {json.dumps(asdict(cls()))}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {unknown}; the keys are {sorted(known)}.")
        return cls(**data)

    def updated(self, **values: Any) -> GenerationRequest:
        """A copy with the given values (``None`` values leave a field as it is)."""
        return GenerationRequest(**{**asdict(self), **{k: v for k, v in values.items() if v is not None}})


def generate(model_file: str | os.PathLike, output_dir: str | os.PathLike, request: GenerationRequest) -> list[dict]:
    """Generate and write the requested images with the project's exporter (DICOM marked synthetic, PNG, NIfTI and
    the provenance manifest) into ``output_dir``; returns the manifest rows."""
    import torch

    info = load_model_info(Path(model_file).parent)
    device = request.device
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        device = "cpu"
    sampler = DiffusionSampler.from_checkpoint(
        Path(model_file), scheduler_type=request.scheduler_type, num_inference_steps=request.num_inference_steps,
        guidance_scale=request.guidance_scale, seed=request.seed, device=device, verbose=False,
    )  # fmt: skip
    modality = request.modality or BUNDLE_MODALITY.get(str(info.get("bundle")), "OT")
    exporter = SyntheticExporter(sampler, output_dir, export_format=request.export_format,
                                 num_samples_per_class=request.num_samples_per_class,
                                 class_names=request.class_names, modality=modality)  # fmt: skip
    return exporter.run()
