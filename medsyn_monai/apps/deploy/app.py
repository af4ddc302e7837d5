"""A MONAI Deploy application that writes synthetic images of a trained bundle as DICOM marked synthetic.

Run it as ``python -m medsyn_monai.apps.deploy -m <models folder> -o <output folder>`` (the App SDK's usual flags;
``-i`` optionally names a JSON request file) or package it with the SDK's packager (``monai-deploy package``). It
needs the optional extra ``[deploy]`` (MONAI Deploy App SDK 4.x on the Holoscan SDK).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydicom

from medsyn_monai.apps.deploy.request import GenerationRequest, find_model_file, generate
from medsyn_monai.networks.schedulers import DEFAULT_SCHEDULER_TYPE
from medsyn_monai.utils.enums import SchedulerType

try:
    from monai.deploy.conditions import CountCondition
    from monai.deploy.core import Application, Operator, OperatorSpec
except ImportError as error:  # the SDK is an optional extra
    raise ImportError(
        'the MONAI Deploy application needs the MONAI Deploy App SDK: pip install -c constraints.txt -e ".[deploy]" '
        f"(from the project's root folder); import failed with: {error}"
    ) from error

__all__ = ["GenerateSyntheticOperator", "CheckSyntheticOperator", "SyntheticImageApp", "main"]

REPORT_NAME = "deploy_report.json"
logger = logging.getLogger(__name__)


class GenerateSyntheticOperator(Operator):
    """Generate the requested images of a trained bundle and write them with their provenance manifest.

    Unlike the SDK's ``MonaiBundleInferenceOperator`` (which runs a bundle's inference on input images and casts its
    outputs to 8 bits), this operator samples a diffusion model with the project's
    :class:`~medsyn_monai.apps.generation.DiffusionSampler` and writes with
    :class:`~medsyn_monai.apps.export.SyntheticExporter`: 16-bit and HU-scaled DICOM Secondary Capture images with
    ConversionType ``SYN``. Output port ``export``: the folder written.
    """

    def __init__(self, fragment: Any, *args: Any, model_file: Path, output_folder: Path, request: GenerationRequest,
                 **kwargs: Any) -> None:  # fmt: skip
        self.model_file = Path(model_file)
        self.output_folder = Path(output_folder)
        self.request = request
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.output("export")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        rows = generate(self.model_file, self.output_folder, self.request)
        logger.info(f"generated {len(rows)} file(s) into {self.output_folder}")
        op_output.emit(str(self.output_folder), "export")


class CheckSyntheticOperator(Operator):
    """The gate before images leave: read every DICOM file of the manifest back and check that it is marked synthetic
    (ConversionType ``SYN``, PatientIdentityRemoved ``YES``, a ``SYNTHETIC^`` patient name); write
    ``deploy_report.json`` (files per format and class, the checks). A file that fails stops the application."""

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("export")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        folder = Path(op_input.receive("export"))
        report = check_export(folder)
        (folder / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
        logger.info(f"checked {report['num_files']} file(s): {report['num_dicom_checked']} DICOM marked synthetic")


def check_export(folder: Path) -> dict[str, Any]:
    """Counts of an export folder's files and the synthetic markings of its DICOM files (see
    :class:`CheckSyntheticOperator`).

    Raises:
        ValueError: a DICOM file is not marked synthetic, or a file of the manifest is missing.
    """
    manifest = json.loads((folder / "manifest.json").read_text())
    rows = manifest["files"] if isinstance(manifest, dict) else manifest
    missing = [r["file"] for r in rows if not (folder / r["file"]).is_file()]
    if missing:
        raise ValueError(f"{folder}: files of the manifest are missing: {missing[:5]}")
    bad = []
    dicom = [r for r in rows if r["format"] == "dicom"]
    for row in dicom:
        ds = pydicom.dcmread(folder / row["file"])
        marks = (ds.get("ConversionType"), ds.get("PatientIdentityRemoved"), str(ds.get("PatientName", "")))
        if marks[0] != "SYN" or marks[1] != "YES" or not marks[2].startswith("SYNTHETIC^"):
            bad.append(f"{row['file']}: ConversionType {marks[0]!r}, PatientIdentityRemoved {marks[1]!r}")
    if bad:
        raise ValueError(f"{folder}: DICOM file(s) not marked synthetic, nothing may leave: {bad[:5]}")
    return {
        "num_files": len(rows),
        "files_per_format": dict(Counter(r["format"] for r in rows)),
        "files_per_class": dict(Counter(str(r["class_name"]) for r in rows)),
        "num_dicom_checked": len(dicom),
        "all_dicom_marked_synthetic": True,
    }


class SyntheticImageApp(Application):
    """MONAI Deploy application: a trained bundle's model (``-m``) -> synthetic images of the requested classes
    (``-o``): :class:`GenerateSyntheticOperator` then :class:`CheckSyntheticOperator`, run once.

    The request comes from the defaults of :class:`~medsyn_monai.apps.deploy.GenerationRequest`, then the JSON file
    given with ``-i`` (if any), then the command-line options of :func:`main`.
    """

    name = "medsyn_synthetic_images"
    description = "Synthetic medical images from a trained medsyn_monai bundle, written as DICOM marked synthetic."
    try:
        version = importlib.metadata.version("medsyn_monai")
    except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
        version = "0.0.0"

    def __init__(self, argv: Sequence[str], overrides: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.sdk_argv = list(argv)  # program name first, as the SDK's parser expects (Holoscan's ``argv`` drops it)
        self.overrides = dict(overrides or {})
        super().__init__(self.sdk_argv, **kwargs)

    def compose(self) -> None:
        context = Application.init_app_context(self.sdk_argv)
        model_file = find_model_file(context.model_path)
        request = GenerationRequest()
        input_path = Path(context.input_path) if context.input_path else None
        if input_path is not None and input_path.is_file():
            request = GenerationRequest.from_json(input_path.read_text(), source=input_path.name)
        request = request.updated(**self.overrides)
        logger.info(f"model {model_file.parent.name}/{model_file.name}; request {request}")
        generate_op = GenerateSyntheticOperator(self, CountCondition(self, 1), model_file=model_file,
                                                output_folder=Path(context.output_path), request=request,
                                                name="generate")  # fmt: skip
        check_op = CheckSyntheticOperator(self, name="check")
        self.add_flow(generate_op, check_op, {("export", "export")})


def _options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m medsyn_monai.apps.deploy",
        description="Write synthetic images of a trained bundle as DICOM marked synthetic (MONAI Deploy application). "
        "The App SDK's flags -m (models folder), -o (output folder), -i (optional JSON request file), -l, -w "
        "are passed on.",
    )
    parser.add_argument("--num_samples_per_class", type=int, default=None)
    parser.add_argument("--class_names", nargs="+", default=None, help="classes to generate (default: all)")
    parser.add_argument("--export_format", choices=["dicom", "png", "nifti", "all"], default=None)
    parser.add_argument("--modality", default=None, help="DICOM modality (default: the bundle's, e.g. CT)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--guidance_scale", type=float, default=None)
    parser.add_argument("--num_inference_steps", type=int, default=None)
    parser.add_argument("--scheduler_type", choices=[t.value for t in SchedulerType], default=None,
                        help=f"sampler (default: {DEFAULT_SCHEDULER_TYPE})")  # fmt: skip
    parser.add_argument("--device", default=None, help="cuda (default, falls back to cpu) or cpu")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse this application's options, pass the App SDK's own flags on, and run it once."""
    argv = list(sys.argv if argv is None else argv)
    options, sdk_args = _options().parse_known_args(argv[1:])
    app = SyntheticImageApp([argv[0], *sdk_args], overrides=vars(options))
    app.run()
