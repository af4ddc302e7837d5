"""save_model_info / load_model_info: the JSON beside the weights, found from the file, its folder or the weights."""

from __future__ import annotations

import json

import pytest
import torch

from medsyn_monai.utils.model_info import MODEL_INFO_NAME, load_model_info, save_model_info


def test_save_writes_strict_json_and_overwrites(tmp_path):
    models = tmp_path / "run" / "models"
    path = save_model_info(models, image_size=16, fid=float("nan"), mean=torch.tensor([0.5, 0.25]), labels={0: "a"})
    assert path == models / MODEL_INFO_NAME and MODEL_INFO_NAME == "model_info.json"
    assert json.loads(path.read_text()) == {"image_size": 16, "fid": None, "mean": [0.5, 0.25], "labels": {"0": "a"}}
    save_model_info(models, image_size=32)  # a second training run replaces the record, it does not merge
    assert load_model_info(models) == {"image_size": 32}
    assert sorted(p.name for p in models.iterdir()) == [MODEL_INFO_NAME]


def test_load_from_file_folder_or_weights(tmp_path):
    save_model_info(tmp_path, scheduler_type="ddim", class_names=["n", "p"])
    expected = {"scheduler_type": "ddim", "class_names": ["n", "p"]}
    # the folder, the JSON file itself, or a weights file beside it (which need not exist)
    for path in (tmp_path, str(tmp_path), tmp_path / MODEL_INFO_NAME, tmp_path / "model.pt", tmp_path / "ema.ckpt"):
        assert load_model_info(path) == expected, path
    # another .json file is read as it is
    (tmp_path / "other.json").write_text('{"kind": "expert"}')
    assert load_model_info(tmp_path / "other.json") == {"kind": "expert"}


def test_missing_record_names_the_file_and_the_fix(tmp_path):
    for given, searched in [
        (tmp_path, tmp_path / MODEL_INFO_NAME),
        (tmp_path / "models" / "model.pt", tmp_path / "models" / MODEL_INFO_NAME),
        (tmp_path / "missing.json", tmp_path / "missing.json"),
        (tmp_path / "runs" / "models", tmp_path / "runs" / "models" / MODEL_INFO_NAME),  # a models/ folder not there
    ]:
        with pytest.raises(FileNotFoundError) as info:
            load_model_info(given)
        msg = str(info.value)
        assert msg.startswith(f"{searched} not found: train a model first"), msg
        assert "configs/train.json" in msg and "ckpt_path" in msg
