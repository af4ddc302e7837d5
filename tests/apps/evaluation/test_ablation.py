"""AblationStudy: variants of the network and of the noise schedule trained with one recipe, scored, reused."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from medsyn_monai.apps.evaluation import AblationStudy
from medsyn_monai.networks.nets import FeatureExtractor, LightweightDiffusionUNet


def _study(tmp_path, variants, seeds=(0,), **kwargs):
    torch.manual_seed(0)
    fx = FeatureExtractor(torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3), torch.nn.ReLU()))
    images = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    loader = [{"image": images[:8]}, {"image": images[8:]}]
    network = functools.partial(LightweightDiffusionUNet, 2, 1, 1, channels=(8, 16), norm_num_groups=4)
    scheduler = functools.partial(DDPMScheduler, num_train_timesteps=100, prediction_type="v_prediction")
    info = {"image_size": 16, "in_channels": 1, "scheduler": {"schedule": "linear_beta"}}
    return AblationStudy(network, scheduler, variants, list(seeds), loader, images, fx, tmp_path / "abl", max_epochs=1,
                         warmup_steps=1, model_info=info, num_samples=6, **kwargs)  # fmt: skip


def test_network_and_schedule_variants_sampling_steps_and_reuse(tmp_path):
    variants = {"first": {"network": {"time_injection": "first"}}, "T50": {"scheduler": {"num_train_timesteps": 50}}}
    results = _study(tmp_path, variants, sampling_steps=[1, 3]).run()
    assert set(results["variants"]) == {"first, 1 steps", "first, 3 steps", "T50, 1 steps", "T50, 3 steps"}
    for name, row in results["variants"].items():
        assert row["num_inference_steps"] == int(name.split(", ")[1][0]) and row["sample_seconds_per_image_mean"] > 0
        assert row["fid_mean"] >= 0 and -1 <= row["runs"][0]["ssim_intra"] <= 1  # SSIM lies in [-1, 1]
    first = json.loads((tmp_path / "abl" / "first" / "seed_0" / "models" / "model_info.json").read_text())
    t50 = json.loads((tmp_path / "abl" / "T50" / "seed_0" / "models" / "model_info.json").read_text())
    assert first["network"]["time_injection"] == "first" and first["scheduler"]["num_train_timesteps"] == 100
    assert t50["network"]["time_injection"] == "all" and t50["scheduler"] == {
        "schedule": "linear_beta", "num_train_timesteps": 50, "prediction_type": "v_prediction"}  # fmt: skip
    assert results["variants"]["T50, 1 steps"]["overrides"] == {"num_train_timesteps": 50}
    assert "| T50, 3 steps | num_train_timesteps=50 |" in (tmp_path / "abl" / "ablation.md").read_text()
    # a second run reuses the trained models (no retraining) and gives the same scores with the same noise
    again = _study(tmp_path, variants, sampling_steps=[1, 3]).run()
    assert again["variants"]["T50, 3 steps"]["runs"][0]["train_seconds"] == 0.0
    assert again["variants"]["T50, 3 steps"]["fid_mean"] == pytest.approx(
        results["variants"]["T50, 3 steps"]["fid_mean"]
    )


def test_seed_spread_test_against_the_first_variant(tmp_path):
    variants = {"all": {"network": {}}, "first": {"network": {"time_injection": "first"}}}
    results = _study(tmp_path, variants, seeds=(0, 1)).run()
    assert "fid_vs_first_p" not in results["variants"]["all"]  # the reference row
    row = results["variants"]["first"]
    fids = [[r["fid"] for r in results["variants"][v]["runs"]] for v in ("all", "first")]
    assert row["fid_vs_first_p"] == pytest.approx(AblationStudy.welch_p(*fids)) and 0 <= row["fid_vs_first_p"] <= 1
    assert row["fid_vs_first_paired_p"] == pytest.approx(AblationStudy.paired_p(*fids))
    assert row["fid_vs_first_diff_mean"] == pytest.approx((fids[1][0] - fids[0][0] + fids[1][1] - fids[0][1]) / 2)
    assert row["train_seconds_mean"] > 0
    table = (tmp_path / "abl" / "ablation.md").read_text()
    assert "ΔFID vs all (per seed) | p paired | p Welch" in table
    reference_row = next(line for line in table.splitlines() if line.startswith("| all |"))
    assert reference_row.split(" | ")[3:6] == ["—", "—", "—"]  # no comparison of the first variant with itself


def test_welch_p_known_answers():
    assert AblationStudy.welch_p([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert AblationStudy.welch_p([0.0, 0.1, 0.2], [100.0, 100.1, 100.2]) < 1e-6
    assert AblationStudy.welch_p([4.0, 4.0], [5.0, 5.0]) == 0.0
    # seed effects shared by both variants: unpaired they hide a constant shift, paired they do not
    a, b = [10.0, 50.0, 90.0], [12.0, 52.1, 91.9]
    assert AblationStudy.welch_p(a, b) > 0.9 and AblationStudy.paired_p(a, b) < 0.01
    assert (
        AblationStudy.paired_p([1.0, 2.0], [1.0, 2.0]) == 1.0 and AblationStudy.paired_p([1.0, 2.0], [2.0, 3.0]) == 0.0
    )


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="sampling_steps"):
        _study(tmp_path, {"a": {}}, sampling_steps=[0])
    with pytest.raises(ValueError, match="variants"):
        _study(tmp_path, {})
    with pytest.raises(ValueError, match="unknown parts \\['optimizer'\\]"):
        _study(tmp_path, {"a": {"optimizer": {"lr": 1}}})
    with pytest.raises(ValueError, match="seeds"):
        AblationStudy(None, None, {"a": {}}, [], [], torch.zeros(2, 1, 4, 4), None, tmp_path, max_epochs=1)
