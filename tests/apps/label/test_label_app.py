"""The MONAI Label sample app in MONAI Label's own environment (requirements-label.txt; collected only there, see
the repository's conftest.py): the server starts on a local port with a tiny trained model, the infer endpoint
returns a synthetic NIfTI of the requested class marked synthetic, nothing is saved as a label, bad classes fail."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pydicom
import pytest

from medsyn_monai.apps.demo import create_demo
from medsyn_monai.networks.schedulers import DEFAULT_SCHEDULER_TYPE, sampling_scheduler, scheduler_name
from tests.bundles._bundle import REPO, Bundle

APP = REPO / "medsyn_monai" / "apps" / "label" / "app"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("label")
    data = create_demo("cxr", root / "demo", num_per_class=6, size=32)
    Bundle("cxr_cfg").train(root / "run", data, max_epochs=1, sample_interval=0, device="cpu", num_head_channels=8,
                            cross_attention_dim=8)  # fmt: skip
    studies = root / "studies"
    studies.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((16, 16), np.float32), np.eye(4)), studies / "case001.nii.gz")
    port = _port()
    cmd = [str(Path(sys.executable).parent / "monailabel"), "start_server", "--app", str(APP), "--studies",
           str(studies), "--conf", "models", str(root / "run" / "models"), "--conf", "num_inference_steps", "2",
           "--conf", "device", "cpu", "--port", str(port)]  # fmt: skip
    log = open(root / "server.log", "w")
    # the monailabel script runs "python -m monailabel.main": this environment's python first on PATH, as after
    # activating it
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": path}
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{url}/info/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise AssertionError((root / "server.log").read_text()[-3000:])
            time.sleep(1)
        else:
            raise AssertionError("the MONAI Label server did not start in 120 s")
        yield url, studies, root
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def test_info_lists_the_synthetic_task(server):
    url, _, _ = server
    info = httpx.get(f"{url}/info/", timeout=30).json()
    task = info["models"]["synthetic"]
    assert task["labels"] == ["normal", "pneumonia"] and task["config"]["num_inference_steps"] == 2


def test_infer_returns_synthetic_image_of_the_class(server, tmp_path):
    url, studies, _ = server
    params = {"params": json.dumps({"class_name": "pneumonia", "seed": 3})}
    response = httpx.post(f"{url}/infer/synthetic", params={"image": "case001", "output": "image"}, data=params,
                          timeout=300)  # fmt: skip
    assert response.status_code == 200, response.text[:500]
    path = tmp_path / "synthetic.nii.gz"
    path.write_bytes(response.content)
    image = nib.load(path)
    assert image.shape == (16, 16) and image.header["descrip"].tobytes().startswith(b"SYNTHETIC")
    assert np.isfinite(image.get_fdata()).all()
    result = httpx.post(f"{url}/infer/synthetic", params={"image": "case001", "output": "json"}, data=params,
                        timeout=300).json()  # fmt: skip
    assert result["class_name"] == "pneumonia" and result["synthetic"] and result["request_seed"] == 3
    assert len(result["checkpoint_sha256"]) == 64
    assert result["scheduler"] == scheduler_name(sampling_scheduler(DEFAULT_SCHEDULER_TYPE))  # the measured default
    solver = {"params": json.dumps({"class_name": "pneumonia", "seed": 3, "scheduler_type": "dpmpp_2m"})}
    result = httpx.post(f"{url}/infer/synthetic", params={"image": "case001", "output": "json"}, data=solver,
                        timeout=300).json()  # fmt: skip
    assert result["scheduler"] == "DPMSolverMultistepScheduler"
    # DICOM on request: the export's Secondary Capture, marked synthetic
    dicom = {"params": json.dumps({"class_name": "normal", "seed": 1, "format": "dicom"})}
    response = httpx.post(f"{url}/infer/synthetic", params={"image": "case001", "output": "image"}, data=dicom,
                          timeout=300)  # fmt: skip
    assert response.status_code == 200, response.text[:500]
    ds = pydicom.dcmread(io.BytesIO(response.content))
    assert ds.ConversionType == "SYN" and ds.Modality == "DX" and str(ds.PatientName).startswith("SYNTHETIC^")
    # a synthetic image is never stored as a label of the real image
    assert not [p for p in (studies / "labels").rglob("*") if p.is_file()]


def test_unknown_class_fails(server):
    url, _, root = server
    params = {"params": json.dumps({"class_name": "tumour"})}
    response = httpx.post(f"{url}/infer/synthetic", params={"image": "case001", "output": "json"}, data=params,
                          timeout=300)  # fmt: skip
    assert response.status_code >= 400
    expected, log = "class_name 'tumour' is not a class of the model", root / "server.log"
    for _ in range(20):  # the server's log reaches the file a moment later
        if expected in log.read_text():
            break
        time.sleep(0.5)
    assert expected in log.read_text(), log.read_text()[-2000:]
