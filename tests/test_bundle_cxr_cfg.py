"""The cxr_cfg bundle's real configs through monai.bundle, with tiny overrides, in both conditioning modes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.bundle import run as bundle_run
from PIL import Image

from medsyn_monai.apps.demo import create_demo

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "cxr_cfg" / "configs"
LOGGING = str(CONFIGS / "logging.conf")
# one split for every config; 8 test images so that the k-NN metrics (nearest_k 5) have enough real images
SPLIT = {"val_fraction": 0.2, "test_fraction": 0.3}
# float32 on CPU: for such tiny networks bf16 autocast is slower than float32
TINY = {"image_size": 16, "channels": [8, 16], "num_head_channels": 8, "cross_attention_dim": 8, "batch_size": 8,
        "num_inference_steps": 2, "num_grid_samples": 4, "warmup_steps": 2, "cpu_bf16": False, **SPLIT}  # fmt: skip


def _run(name: str, **overrides) -> None:
    bundle_run(config_file=str(CONFIGS / f"{name}.json"), logging_file=LOGGING, **overrides)


@pytest.fixture(scope="module")
def tiny_cxr(tmp_path_factory) -> Path:
    """12 synthetic chest X-ray phantoms (64 px) per class: ``normal/``, ``pneumonia/``."""
    return create_demo("cxr", tmp_path_factory.mktemp("cxr") / "demo", num_per_class=12)


@pytest.fixture(scope="module")
def tiny_ood(tmp_path_factory) -> Path:
    """An out-of-distribution reference set: 8 RGB cell crops (32 px)."""
    return create_demo("cells", tmp_path_factory.mktemp("ood") / "cells", num_per_class=4, size=32)


def test_defaults():
    """The documented defaults: demo data at 28 px, cosine schedule, CFG with condition dropout, DDIM-50 sampling."""
    configs = {}
    for name in ("train", "inference", "train_expert", "evaluate"):
        configs[name] = ConfigParser()
        configs[name].read_config(str(CONFIGS / f"{name}.json"))
    train, infer, expert, ev = (configs[k] for k in ("train", "inference", "train_expert", "evaluate"))
    for cfg in (train, expert, ev):
        assert cfg["dataset_dir"] == cfg["demo_dir"] == "data/cxr_demo"
    assert train["image_size"] == expert["image_size"] == 28 and train["in_channels"] == 1
    assert 28 % 2 ** (len(train["channels"]) - 1) == 0  # the U-Net halves 28 -> 14 -> 7
    assert train["beta_schedule"] == "cosine" and train["num_train_timesteps"] == 1000
    assert train["cond_drop_prob"] == 0.1 and train["loss_type"] == "l2"
    assert train["class_conditioning"] == "embedding" and train["architecture"] == "monai"
    assert train["network_def"]["_target_"] == "medsyn_monai.networks.nets.ClassConditionedDiffusionUNet"
    assert train["train"]["trainer"]["null_class_label"] == "@num_classes"
    assert infer["scheduler_type"] == "ddim" and infer["num_inference_steps"] == 50
    assert infer["guidance_scale"] == 3.0 and infer["guidance_rescale"] == 0.0
    assert infer["num_samples_per_class"] is None and infer["class_labels"] is None
    assert expert["expert_network"] == "resnet18"
    assert ev["guidance_scales"] == [0.0, 1.0, 3.0, 5.0] and ev["ood_dir"] == "data/cells_demo"
    # the measured PneumoniaMNIST recipe (docs): v-prediction, EMA 0.995 with a linear warm-up, w = 1 for pre-training
    assert train["prediction_type"] == "v_prediction" and train["ema_decay"] == 0.995 and train["ema_adaptive"] is False
    pretraining = ConfigParser.load_config_file(str(CONFIGS / "evaluate_pretraining.json"))
    assert pretraining["guidance_scale"] == 1.0 and pretraining["samples_per_class"] == 500


def test_check_properties_and_metadata(tmp_path, tiny_cxr):
    workflow = ConfigWorkflow(config_file=str(CONFIGS / "train.json"), workflow_type="train",
                              meta_file=str(CONFIGS / "metadata.json"), logging_file=LOGGING,
                              dataset_dir=str(tiny_cxr), output_dir=str(tmp_path), **TINY)  # fmt: skip
    workflow.initialize()
    assert workflow.check_properties() == []
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    for key in ("version", "changelog", "monai_version", "pytorch_version", "numpy_version",
                "required_packages_version", "name", "task", "description", "authors", "data_source",
                "network_data_format", "intended_use", "references"):  # fmt: skip
        assert meta[key], key
    assert meta["version"] in meta["changelog"]
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 1


def test_embedding_expert_train_inference_evaluate(tmp_path, tiny_cxr, tiny_ood):
    out = tmp_path / "run"
    common = {"dataset_dir": str(tiny_cxr), "output_dir": str(out), **SPLIT}  # TINY holds SPLIT as well
    _run("train_expert", **common, max_epochs=1, image_size=16, batch_size=8)
    assert (out / "models" / "expert" / "best_model.pt").is_file()

    _run("train", **{**common, **TINY}, max_epochs=1, sample_interval=1)
    models = out / "models"
    assert {"checkpoint.pt", "model.pt", "model_info.json"} <= {p.name for p in models.iterdir()}
    info = json.loads((models / "model_info.json").read_text())
    assert info["bundle"] == "cxr_cfg" and info["class_conditioning"] == "embedding" and info["architecture"] == "monai"
    assert info["num_classes"] == 2 and info["null_class_label"] == 2 and info["class_names"] == ["normal", "pneumonia"]
    assert info["beta_schedule"] == "cosine" and info["cond_drop_prob"] == 0.1 and info["image_size"] == 16
    assert info["network_kwargs"]["channels"] == [8, 16] and info["network_kwargs"]["attention_levels"] == [False, True]
    state = torch.load(models / "model.pt", weights_only=True)
    assert state["backbone.class_embedding.weight"].shape[0] == 3  # 2 classes + the null label
    assert not any(k.startswith("label_embedding") for k in state)
    ckpt = torch.load(models / "checkpoint.pt", weights_only=False)
    assert ckpt["trainer"]["iteration"] == 1  # 12 training images (50 % of 24), batch 8, drop_last
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    grid = Image.open(out / "samples" / "training" / "epoch_0001.png")
    assert grid.mode == "L" and grid.size == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2)  # 4 samples, columns = 2 classes
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1] and np.isfinite(float(rows[0]["mean_loss"]))

    # per-class counts of one class, guidance with rescale
    _run("inference", output_dir=str(out), num_inference_steps=2, num_samples_per_class=3, class_labels=[1],
         guidance_rescale=0.7)  # fmt: skip
    samples = out / "samples"
    assert [p.name for p in sorted(samples.glob("sample_*.png"))] == [f"sample_0000{i}_pneumonia.png" for i in range(3)]
    png = Image.open(samples / "sample_00000_pneumonia.png")
    assert png.mode == "L" and png.size == (16, 16) and np.asarray(png).std() > 0
    manifest = list(csv.DictReader(open(samples / "samples.csv")))
    assert [r["label"] for r in manifest] == ["1", "1", "1"]

    _run("evaluate", **common, ood_dir=str(tiny_ood), num_samples=8, num_seeds=1, samples_per_class=2,
         num_inference_steps=2, guidance_scales=[0.0, 3.0], sweep_samples_per_class=2)  # fmt: skip
    ev = out / "eval"
    metrics = json.loads((ev / "metrics.json").read_text())
    # the cross-set table: real test vs real train vs synthetic vs out-of-distribution, SSIM and FID for each pair
    pairs = ["synthetic_vs_real", "synthetic_vs_real_train", "synthetic_vs_ood", "real_vs_real_train", "real_vs_ood",
             "real_train_vs_ood"]  # fmt: skip
    for pair in pairs:
        assert -1.0 <= metrics[f"ssim_cross_{pair}"] <= 1.0, pair
    for key in ("fid", "fid_real_train", "fid_ood", "fid_synthetic_vs_real_train", "fid_synthetic_vs_ood",
                "fid_real_train_vs_ood"):  # fmt: skip
        assert metrics[key] is not None and metrics[key] >= -1e-6, key
    # chest phantoms of the two real splits resemble each other far more than they resemble cell crops
    assert metrics["ssim_cross_real_vs_real_train"] > metrics["ssim_cross_real_vs_ood"] + 0.1
    assert metrics["num_real"] == 8 and metrics["num_synthetic"] == 8
    assert 0.0 <= metrics["expert_accuracy_real"] <= 1.0 and 0.0 <= metrics["generation_accuracy_mean"] <= 1.0
    for w in ("w0", "w3"):
        assert 0.0 <= metrics[f"generation_accuracy_{w}"] <= 1.0 and metrics[f"fid_{w}"] >= -1e-6
    report = (ev / "report.md").read_text()
    assert "## Cross-set similarity" in report and "| real | ood |" in report and "| real_train | ood |" in report
    sweep = json.loads((ev / "guidance_sweep" / "guidance_sweep.json").read_text())
    assert [r["guidance_scale"] for r in sweep["rows"]] == [0.0, 3.0]
    assert sweep["class_names"] == ["normal", "pneumonia"] and sweep["samples_per_class"] == 2
    assert "| 3 |" in (ev / "guidance_sweep" / "guidance_sweep.md").read_text()
    assert Image.open(ev / "guidance_sweep" / "guidance_w3.png").mode == "L"

    # the seed's downstream score: classifiers pre-trained on synthetic images, fine-tuned on 100 / 50 / 0 % real
    _run("evaluate_pretraining", **common, samples_per_class=4, num_seeds=2, num_inference_steps=2,
         real_fractions=[1.0, 0.5, 0.0], pretrain_epochs=1, finetune_epochs=1, real_epochs=1,
         classifier_input_size=16, batch_size=8)  # fmt: skip
    pre = out / "eval" / "pretraining"
    m = json.loads((pre / "metrics.json").read_text())
    for row in ("synthetic_only", "synthetic_then_real_100", "synthetic_then_real_50", "real_only_100", "real_only_50"):
        assert 0.0 <= m[f"accuracy_{row}_mean"] <= 1.0 and m[f"accuracy_{row}_std"] >= 0.0, row
    report = json.loads((pre / "pretraining.json").read_text())
    assert report["settings"]["num_synthetic"] == 8 and report["settings"]["classifier_seeds"] == [0, 1]
    assert report["settings"]["num_real_test"] == 8 and report["settings"]["num_real_train"] == 12
    assert [r["num_real"] for r in report["runs"]["real_only_50"]] == [6, 6]  # half of each class (6 + 6 real)
    assert "| synthetic only | 0 |" in (pre / "pretraining.md").read_text()


@pytest.mark.parametrize("architecture", ["lightweight", "monai"])
def test_cross_attention_train_and_inference(tmp_path, tiny_cxr, architecture):
    out = tmp_path / "run"
    _run("train", dataset_dir=str(tiny_cxr), output_dir=str(out), **TINY, max_epochs=1, sample_interval=1,
         class_conditioning="cross_attention", architecture=architecture, loss_type="l1")  # fmt: skip
    info = json.loads((out / "models" / "model_info.json").read_text())
    assert info["class_conditioning"] == "cross_attention" and info["architecture"] == architecture
    assert info["loss_type"] == "l1" and info["cross_attention_dim"] == 8
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert state["label_embedding.weight"].shape == (3, 8)  # the label is a cross-attention token, null label last
    assert not any("class_embedding" in k for k in state)
    assert any(".attn2.to_k." in k for k in state)  # cross-attention layers read the label token
    _run("inference", output_dir=str(out), num_inference_steps=2, num_samples=4, guidance_scale=2.0)
    samples = out / "samples"
    manifest = list(csv.DictReader(open(samples / "samples.csv")))
    assert [r["class_name"] for r in manifest] == ["normal", "pneumonia", "normal", "pneumonia"]
    assert Image.open(samples / "grid.png").mode == "L"


def test_pneumoniamnist_npz_layout(tmp_path, shared_data):
    """The real PneumoniaMNIST .npz (a file or a folder holding it) goes through the training data path at 28 px."""
    npz = shared_data / "pneumoniamnist" / "pneumoniamnist.npz"
    if not npz.is_file():
        pytest.skip(f"{npz} is absent")
    for root in (npz, npz.parent):
        parser = ConfigParser()
        parser.read_config(str(CONFIGS / "train.json"))
        parser.update({"dataset_dir": str(root), "output_dir": str(tmp_path), "class_names": ["normal", "pneumonia"]})
        collection = parser.get_parsed_content("collection")
        assert str(collection.layout) == "npz" and collection.class_names == ["normal", "pneumonia"]
        assert [len(collection.data(s)) for s in ("train", "val", "test")] == [4708, 524, 624]
        assert parser.get_parsed_content("num_classes") == 2
    records = collection.data("train")[:4]
    prep, resize = parser.get_parsed_content("train#preprocessing"), parser.get_parsed_content("train#slice_transform")
    for record in records:
        image = resize(prep(record))["image"]
        assert tuple(image.shape) == (1, 28, 28) and -1.0 <= float(image.min()) < float(image.max()) <= 1.0
