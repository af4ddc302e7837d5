"""cell_ddpm's train_expert.json and evaluate.json through monai.bundle, on a tiny cells demo."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from monai.bundle import run as bundle_run
from PIL import Image

from medsyn_monai.apps.demo import create_demo

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "cell_ddpm" / "configs"
LOGGING = str(CONFIGS / "logging.conf")
# one split for all three configs; 8 test crops so that the k-NN metrics (nearest_k 5) have enough real images
SPLIT = {"val_fraction": 0.2, "test_fraction": 0.3}


def _run(name: str, **overrides) -> None:
    bundle_run(config_file=str(CONFIGS / f"{name}.json"), logging_file=LOGGING, **overrides)


def test_train_expert_then_evaluate(tmp_path):
    data = create_demo("cells", tmp_path / "cells", num_per_class=12)
    out = tmp_path / "run"
    common = {"dataset_dir": str(data), "output_dir": str(out), **SPLIT}
    _run("train", **common, max_epochs=1, image_size=16, channels=[8, 16], batch_size=8, num_inference_steps=2,
         num_grid_samples=4, warmup_steps=2, cpu_bf16=False)  # fmt: skip
    _run("train_expert", **common, max_epochs=2, image_size=16, batch_size=8)

    expert = out / "models" / "expert"
    assert {"best_model.pt", "best_metric.json", "model_info.json"} <= {p.name for p in expert.iterdir()}
    info = json.loads((expert / "model_info.json").read_text())
    assert info["bundle"] == "cell_ddpm" and info["kind"] == "expert" and info["name"] == "resnet18"
    assert info["in_channels"] == 3 and info["num_classes"] == 2 and info["image_size"] == 16
    assert info["class_names"] == ["parasitized", "uninfected"] and info["dataset_dir"] == str(data.resolve())
    state = torch.load(expert / "best_model.pt", weights_only=True)
    assert any(v.ndim == 4 and v.shape[1] == 3 for v in state.values())  # an RGB first convolution
    report = json.loads((out / "eval" / "expert" / "test_metrics.json").read_text())
    assert report["num_samples"] == 8 and sum(map(sum, report["confusion_matrix"])) == 8
    assert 0.0 <= report["accuracy"] <= 1.0
    assert (out / "eval" / "expert" / "val_confusion_matrix.png").is_file()
    assert [int(r["epoch"]) for r in csv.DictReader(open(out / "expert_train_log.csv"))] == [1, 2]

    _run("evaluate", **common, num_samples=8, num_seeds=2, samples_per_class=2, num_inference_steps=2)
    ev = out / "eval"
    metrics = json.loads((ev / "metrics.json").read_text())
    for key in ("expert_accuracy_real", "expert_accuracy_synthetic", "generation_accuracy_mean", "chi2_pvalue",
                "kl_divergence", "chi2_class_pvalue", "kl_class", "fid", "ssim_intra_synthetic"):  # fmt: skip
        assert key in metrics, key
    assert metrics["num_real"] == 8 and metrics["num_synthetic"] == 8
    for key in ("expert_accuracy_real", "expert_accuracy_synthetic", "generation_accuracy_mean"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert 0.0 <= metrics["chi2_pvalue"] <= 1.0 and metrics["kl_divergence"] >= 0.0
    assert metrics["chi2_class_pvalue"] is None or 0.0 <= metrics["chi2_class_pvalue"] <= 1.0
    assert metrics["kl_class"] is None or metrics["kl_class"] >= 0.0
    ga = json.loads((ev / "generation_accuracy.json").read_text())
    assert len(ga["generation_accuracy_per_seed"]) == 2
    text = (ev / "report.md").read_text()
    assert "expert_accuracy_synthetic" in text and "generation_accuracy_mean" in text
    for png in ("real_grid.png", "synthetic_grid.png", "intensity_histogram.png", "generation_confusion_synthetic.png"):
        assert (ev / png).is_file(), png
    for grid in ("real_grid.png", "synthetic_grid.png"):
        assert Image.open(ev / grid).mode == "RGB", grid
