from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medsyn_monai.apps.evaluation import AblationStudy
from medsyn_monai.networks.nets import FeatureExtractor

CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / "ct_lightweight" / "configs"


def _runner(tmp_path, demo, **kwargs):
    torch.manual_seed(0)
    fx = FeatureExtractor(torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3), torch.nn.ReLU()))
    common = {"dataset_dir": str(demo), "max_epochs": 1, "image_size": 16, "channels": [8, 16], "batch_size": 8,
              "sample_interval": 0, "cpu_bf16": False}  # fmt: skip
    return AblationStudy(CONFIGS / "train.json", CONFIGS / "inference.json", {"T250": {"num_train_timesteps": 250}},
                          [0], torch.rand(12, 1, 16, 16) * 2 - 1, fx, tmp_path / "abl", common_overrides=common,
                          num_samples=12, **kwargs)  # fmt: skip


def test_sampling_steps_sweep_and_reuse(tmp_path, tiny_ct_demo):
    runner = _runner(tmp_path, tiny_ct_demo, sampling_steps=[1, 3])
    results = runner.run()
    assert set(results["variants"]) == {"T250, 1 steps", "T250, 3 steps"}
    for name, steps in (("T250, 1 steps", 1), ("T250, 3 steps", 3)):
        row = results["variants"][name]
        assert row["num_inference_steps"] == steps and row["sample_seconds_per_image_mean"] > 0
        assert row["fid_mean"] >= 0 and -1 <= row["runs"][0]["ssim_intra"] <= 1  # SSIM lies in [-1, 1]
    info = json.loads((tmp_path / "abl" / "T250" / "seed_0" / "models" / "model_info.json").read_text())
    assert info["num_train_timesteps"] == 250
    assert "| T250, 3 steps |" in (tmp_path / "abl" / "ablation.md").read_text()
    # a second run reuses the trained model (no retraining) and gives the same scores with the same noise
    again = _runner(tmp_path, tiny_ct_demo, sampling_steps=[1, 3]).run()
    assert again["variants"]["T250, 3 steps"]["runs"][0]["train_seconds"] == 0.0
    assert again["variants"]["T250, 3 steps"]["fid_mean"] == pytest.approx(
        results["variants"]["T250, 3 steps"]["fid_mean"]
    )


def test_bad_arguments(tmp_path, tiny_ct_demo):
    with pytest.raises(ValueError, match="sampling_steps"):
        _runner(tmp_path, tiny_ct_demo, sampling_steps=[0])
    with pytest.raises(ValueError, match="variants"):
        AblationStudy("t", "i", {}, [0], torch.zeros(2, 1, 4, 4), None, tmp_path)
    with pytest.raises(ValueError, match="seeds"):
        AblationStudy("t", "i", {"a": {}}, [], torch.zeros(2, 1, 4, 4), None, tmp_path)
