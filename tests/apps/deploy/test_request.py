"""apps.deploy without the MONAI Deploy App SDK: finding the model in a run or MAP folder, generation requests and
their errors, generation into DICOM marked synthetic, and the entry point's message when the SDK is missing."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pydicom
import pytest

from medsyn_monai.apps.deploy import BUNDLE_MODALITY, GenerationRequest, find_model_file, generate
from medsyn_monai.networks.schedulers import DEFAULT_SCHEDULER_TYPE, sampling_scheduler, scheduler_name
from tests.bundles._bundle import REPO


def test_find_model_in_run_map_and_file(tiny_ct_models, tmp_path):
    assert find_model_file(tiny_ct_models) == tiny_ct_models / "model.pt"
    assert find_model_file(tiny_ct_models / "model.pt") == tiny_ct_models / "model.pt"
    # a MAP's models folder: /opt/holoscan/models/<name>/
    map_models = tmp_path / "opt_holoscan_models"
    shutil.copytree(tiny_ct_models, map_models / "ct_lightweight")
    assert find_model_file(map_models) == map_models / "ct_lightweight" / "model.pt"
    shutil.copytree(tiny_ct_models, map_models / "second")
    with pytest.raises(FileNotFoundError, match="holds 2 models"):
        find_model_file(map_models)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="expected model.pt beside model_info.json"):
        find_model_file(tmp_path / "empty")


def test_request_from_json_and_overrides():
    request = GenerationRequest.from_json('{"num_samples_per_class": 3, "seed": 5}', "req.json")
    assert request.num_samples_per_class == 3 and request.export_format == "dicom"
    assert request.updated(seed=None, class_names=["a"]).seed == 5  # None keeps a value
    with pytest.raises(ValueError, match=r"req.json: unknown key\(s\) \['samples'\]"):
        GenerationRequest.from_json('{"samples": 3}', "req.json")
    with pytest.raises(ValueError, match="req.json is not valid JSON"):
        GenerationRequest.from_json("{num", "req.json")
    with pytest.raises(ValueError, match="JSON object"):
        GenerationRequest.from_json("[1]", "req.json")


def test_generate_writes_dicom_marked_synthetic(tiny_ct_models, tmp_path):
    request = GenerationRequest(num_samples_per_class=2, class_names=["lesion"], num_inference_steps=2, device="cpu")
    rows = generate(tiny_ct_models / "model.pt", tmp_path / "out", request)
    assert [r["class_name"] for r in rows] == ["lesion", "lesion"] and {r["format"] for r in rows} == {"dicom"}
    ds = pydicom.dcmread(tmp_path / "out" / rows[0]["file"])
    assert ds.Modality == BUNDLE_MODALITY["ct_lightweight"] == "CT" and ds.ConversionType == "SYN"
    assert rows[0]["scheduler"] == scheduler_name(sampling_scheduler(DEFAULT_SCHEDULER_TYPE))  # the measured default


def test_generate_with_another_sampler(tiny_ct_models, tmp_path):
    text = '{"num_samples_per_class": 1, "scheduler_type": "unipc", "num_inference_steps": 3, "device": "cpu"}'
    request = GenerationRequest.from_json(text).updated(export_format="png")
    rows = generate(tiny_ct_models / "model.pt", tmp_path / "out", request)
    assert {r["scheduler"] for r in rows} == {"UniPCMultistepScheduler"} and rows[0]["num_inference_steps"] == 3


def test_entry_point_without_or_with_the_sdk(tmp_path):
    result = subprocess.run([sys.executable, "-m", "medsyn_monai.apps.deploy", "--help"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=300)  # fmt: skip
    if importlib.util.find_spec("monai.deploy") is None:  # the core install: a clear message, no traceback maze
        assert result.returncode != 0
        assert 'pip install -c constraints.txt -e ".[deploy]"' in result.stderr
    else:
        assert result.returncode == 0 and "--num_samples_per_class" in result.stdout
    assert (REPO / "medsyn_monai" / "apps" / "deploy" / "app.yaml").is_file()
