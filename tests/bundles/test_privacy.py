"""No patient data in any output: a DICOM CT collection whose headers carry identifying values in the attributes of
the DICOM PS3.15 Basic Application Level Confidentiality Profile goes through the real ct_lightweight commands
(train, expert, inference, export in every format, evaluation, audit) in subprocesses; no value is found in any byte
written under output_dir nor in the logs, and no absolute input path either."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from medsyn_monai.apps.demo.ct import create_ct_demo

BUNDLE = "ct_lightweight"
TINY = ["--image_size", "16", "--channels", "[8,16]", "--batch_size", "8", "--num_inference_steps", "2",
        "--cpu_bf16", "false", "--device", "cpu"]  # fmt: skip
UID_ROOT = "1.2.826.0.1.3680043.10.5173"  # values below this root only ever come from the test's headers

#: attribute -> identifying value (person names, IDs, dates and times, institution, free text; UIDs per file below)
PHI: dict[str, str] = {
    "PatientName": "ZQXFAMILY^ZQXGIVEN^ZQXMIDDLE",
    "PatientID": "ZQX-MRN-731904",
    "IssuerOfPatientID": "ZQX-ISSUER-HOSPITAL",
    "OtherPatientNames": "ZQXOTHERNAME^ZQXALIAS",
    "PatientBirthDate": "19130417",
    "PatientBirthTime": "031415",
    "PatientAge": "087Y",
    "PatientAddress": "ZQX 17 Rue Imaginaire Lyon",
    "PatientTelephoneNumbers": "+33-4-7899-1234",
    "PatientMotherBirthName": "ZQXMOTHERNAME",
    "MedicalRecordLocator": "ZQX-LOCATOR-55",
    "PatientComments": "ZQX patient comment: allergic to penicillin",
    "AdditionalPatientHistory": "ZQX history: smoker since 1961",
    "EthnicGroup": "ZQXETHNIC",
    "Occupation": "ZQX lightkeeper",
    "AccessionNumber": "ZQXACC99172",
    "StudyID": "ZQXSTUDY42",
    "StudyDate": "20190923",
    "SeriesDate": "20190924",
    "AcquisitionDate": "20190925",
    "ContentDate": "20190926",
    "StudyTime": "112233.445566",
    "SeriesTime": "112244.556677",
    "AcquisitionDateTime": "20190925113355.667788",
    "InstitutionName": "ZQX Saint Fictive Hospital",
    "InstitutionAddress": "ZQX 1 Hospital Road, Nowhere",
    "InstitutionalDepartmentName": "ZQX Department of Imaginary Radiology",
    "StationName": "ZQXSTATION07",
    "DeviceSerialNumber": "ZQXSERIAL8812",
    "ReferringPhysicianName": "ZQXREFERRER^ANNA",
    "PerformingPhysicianName": "ZQXPERFORMER^BOB",
    "PhysiciansOfRecord": "ZQXRECORDDOC^CLARA",
    "NameOfPhysiciansReadingStudy": "ZQXREADER^DAVID",
    "OperatorsName": "ZQXOPERATOR^EVE",
    "RequestingPhysician": "ZQXREQUESTER^FRANK",
    "StudyDescription": "ZQX CT abdomen of patient ZQXFAMILY",
    "SeriesDescription": "ZQX portal venous phase",
    "ImageComments": "ZQX comment: compare with prior from 2017",
    "ProtocolName": "ZQX protocol liver 3mm",
}


def _identifying_collection(root: Path) -> tuple[Path, list[str]]:
    """The tiny CT demo (DICOM series) with every header carrying :data:`PHI` and UIDs below :data:`UID_ROOT`;
    returns the root and every identifying value written."""
    create_ct_demo(root, num_cases=8, num_slices=4, size=64)
    values = list(PHI.values())
    for c, case in enumerate(sorted(p for p in root.rglob("*") if p.is_dir() and list(p.glob("*.dcm")))):
        study, series, frame = (f"{UID_ROOT}.{c + 1}.{k}" for k in (1, 2, 3))
        values += [study, series, frame]
        for i, path in enumerate(sorted(case.glob("*.dcm"))):
            ds = pydicom.dcmread(path)
            for keyword, value in PHI.items():
                setattr(ds, keyword, value)
            sop = f"{UID_ROOT}.{c + 1}.4.{i + 1}"
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.SOPInstanceUID = sop
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.save_as(path, enforce_file_format=True)
            values.append(sop)
    return root, values


def _variants(value: str) -> set[bytes]:
    """The byte forms a value could take in an output: as written, its name parts, dates as ISO dates."""
    forms = {value}
    if "^" in value:
        forms |= {p for p in value.split("^") if len(p) > 3} | {value.replace("^", " ")}
    if len(value) == 8 and value.isdigit():
        forms.add(f"{value[:4]}-{value[4:6]}-{value[6:]}")
    return {f.encode() for f in forms} | {f.encode("utf-16-le") for f in forms}


@pytest.mark.slow
def test_no_header_value_or_input_path_reaches_any_output(bundle, tmp_path):
    data, values = _identifying_collection(tmp_path / "hospital_export" / "ct")
    inputs = b"".join(p.read_bytes() for p in data.rglob("*.dcm"))
    assert all(any(f in inputs for f in _variants(v)) for v in values)  # the search finds every value where it is
    out = tmp_path / "run"
    overlay = lambda name: json.dumps([bundle.config("train"), bundle.config(name)])  # noqa: E731
    common = ["--dataset_dir", str(data), "--output_dir", str(out), *TINY]
    commands = [
        ["--config_file", bundle.config("train"), *common, "--max_epochs", "2", "--num_grid_samples", "2"],
        ["--config_file", overlay("train_expert"), *common, "--max_epochs", "1"],
        ["--config_file", bundle.config("inference"), "--output_dir", str(out), "--num_samples", "4",
         "--num_inference_steps", "2", "--save_nifti", "true", "--device", "cpu"],
        ["--config_file", overlay("export"), *common, "--num_samples_per_class", "2"],
        ["--config_file", overlay("evaluate"), *common, "--num_samples", "8", "--num_seeds", "1",
         "--samples_per_class", "2"],
        ["--config_file", overlay("audit"), *common, "--num_samples", "4"],
        ["--config_file", overlay("audit"), *common, "--synthetic_dir", str(out / "export" / "dicom")],
    ]  # fmt: skip
    logs = []
    for args in commands:
        res = bundle.command(*args)
        assert res.returncode == 0, res.stderr[-3000:]
        logs.append((res.stdout + res.stderr).encode())

    written = [p for p in out.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in written}
    assert {".pt", ".json", ".csv", ".png", ".dcm", ".gz", ".md"} <= kinds
    assert any("tfevents" in p.name for p in written)
    hits = []
    for value in values:
        forms = _variants(value)
        hits += [f"{p.relative_to(out)}: {value}" for p in written if any(f in p.read_bytes() for f in forms)]
        hits += [f"log of command {i}: {value}" for i, log in enumerate(logs) if any(f in log for f in forms)]
    assert not hits, hits[:20]
    # nothing carries the absolute input location either (the logs may: they echo the command line)
    absolute = [str(data).encode(), str(data.resolve()).encode(), str(tmp_path / "hospital_export").encode()]
    leaks = [str(p.relative_to(out)) for p in written if any(a in p.read_bytes() for a in absolute)]
    assert not leaks, leaks
    shutil.rmtree(out)
