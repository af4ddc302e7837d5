"""The MONAI Deploy application end to end (needs the extra [deploy]; collected only where it is installed, see the
repository's conftest.py): ``python -m medsyn_monai.apps.deploy -m ... -o ...`` on a tiny trained CT model writes
DICOM marked synthetic of the requested class that highdicom and the project's loader read back, with the manifest
and the app's check report; a MAP-style models folder and a request file given with ``-i`` work; bad requests fail
with a non-zero exit code naming the problem."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import pydicom

from medsyn_monai.apps.deploy.app import REPORT_NAME, SyntheticImageApp, check_export
from medsyn_monai.data import ImageCollection
from tests.bundles._bundle import REPO


def _app(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medsyn_monai.apps.deploy", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)  # fmt: skip


def test_app_writes_requested_class_as_synthetic_dicom(tiny_ct_models, tmp_path):
    out = tmp_path / "out"
    result = _app("-m", str(tiny_ct_models), "-o", str(out), "--class_names", "lesion", "--num_samples_per_class",
                  "3", "--num_inference_steps", "2", "--device", "cpu", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    files = sorted((out / "dicom").rglob("*.dcm"))
    assert [f.parent.name for f in files] == ["lesion"] * 3
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["files_per_class"] == {"lesion": 3} and report["all_dicom_marked_synthetic"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["export"]["synthetic"] and manifest["export"]["modality"] == "CT"
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.ConversionType == "SYN" and ds.PatientIdentityRemoved == "YES" and ds.Modality == "CT"
        image = hd.imread(str(path))  # highdicom reads it as an image
        assert image.SOPInstanceUID == ds.SOPInstanceUID
    # the project's own loader reads the export back as a labelled data set
    collection = ImageCollection(out / "dicom", val_fraction=0.0, test_fraction=0.0)
    assert collection.class_names == ["lesion"] and len(collection.data("train")) == 3


def test_map_models_folder_and_request_file(tiny_ct_models, tmp_path):
    models = tmp_path / "opt_holoscan_models"
    shutil.copytree(tiny_ct_models, models / "ct_lightweight")
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"num_samples_per_class": 1, "export_format": "png", "num_inference_steps": 2,
                                   "device": "cpu"}))  # fmt: skip
    out = tmp_path / "out"
    result = _app("-m", str(models), "-o", str(out), "-i", str(request), "--seed", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "png/lesion/synthetic_lesion_00000.png", "png/normal/synthetic_normal_00000.png"]  # fmt: skip
    assert check_export(out)["num_dicom_checked"] == 0
    assert {r["seed"] for r in json.loads((out / "manifest.json").read_text())["files"]} <= {3, 4}


def test_bad_requests_fail_clearly(tiny_ct_models, tmp_path):
    result = _app("-m", str(tiny_ct_models), "-o", str(tmp_path / "a"), "--class_names", "tumour", "--device", "cpu",
                  cwd=tmp_path)  # fmt: skip
    assert result.returncode != 0 and "not classes of the model ['lesion', 'normal']" in result.stdout + result.stderr
    result = _app("-m", str(tmp_path), "-o", str(tmp_path / "b"), cwd=tmp_path)
    assert result.returncode != 0 and "holds no trained model" in result.stderr
    assert SyntheticImageApp.version and (REPO / "medsyn_monai" / "apps" / "deploy" / "app.yaml").is_file()
