"""The derm_dreambooth bundle's real configs through monai.bundle: base training, few-shot fine-tuning with prior
preservation (with and without feature alignment), inference of both models, evaluation and the augmentation study."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run
from PIL import Image

from medsyn_monai.apps.demo.derm import create_derm_demo

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "derm_dreambooth" / "configs"
LOGGING = str(CONFIGS / "logging.conf")
TINY = {"image_size": 16, "channels": [8, 16], "batch_size": 8, "num_inference_steps": 2, "num_grid_samples": 3,
        "warmup_steps": 2, "cpu_bf16": False, "max_epochs": 1}  # fmt: skip
FEWSHOT = {"max_epochs": 2, "batch_size": 2, "num_class_images": 6, "prior_inference_steps": 2,
           "num_inference_steps": 2, "num_grid_samples": 3, "warmup_steps": 2, "cpu_bf16": False,
           "sample_interval": 0}  # fmt: skip
EMBED = "backbone.class_embedding.weight"


def _run(name: str, **overrides) -> None:
    bundle_run(config_file=str(CONFIGS / f"{name}.json"), logging_file=LOGGING, **overrides)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, Path]:
    """A tiny demo (8 lesions per class, 3 instance images) and a base model trained on it for one epoch."""
    root = tmp_path_factory.mktemp("derm")
    demo = create_derm_demo(root / "demo", num_per_class=8, num_instance=3)
    out = root / "run"
    _run("train", demo_dir=str(demo), dataset_dir=str(demo / "lesions"), output_dir=str(out), **TINY)
    return {"demo": demo, "out": out}


def test_defaults_and_metadata():
    train, fewshot, infer = ConfigParser(), ConfigParser(), ConfigParser()
    train.read_config(str(CONFIGS / "train.json"))
    fewshot.read_config(str(CONFIGS / "train_fewshot.json"))
    infer.read_config(str(CONFIGS / "inference.json"))
    assert train["dataset_dir"] == "data/derm_demo/lesions" and train["demo_dir"] == "data/derm_demo"
    assert train["cond_drop_prob"] == 0.1 and train["class_conditioning"] == "embedding" and train["in_channels"] == 3
    assert train["model_info"]["null_class_label"] == "@num_classes"
    assert fewshot["num_class_images"] == 100 and fewshot["prior_loss_weight"] == 1.0
    assert fewshot["instance_dir"] == "data/derm_demo/instance" and fewshot["instance_class"] == "blue_nevus"
    assert fewshot["parent_class"] == "nevus" and fewshot["with_prior_preservation"] is True
    assert fewshot["feature_alignment"] is False and fewshot["cond_drop_prob"] == 0.1
    assert "'prior_images'" in fewshot["class_dir"] and "'fewshot'" in fewshot["fewshot_dir"]
    assert fewshot["train"]["trainer"]["sample_weight_key"] == fewshot["train"]["dataset"]["weight_key"]
    assert infer["fewshot"] is False and infer["guidance_scale"] == 2.0
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"] and "synthetic" in meta["data_source"].lower()
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 3
    readme = (CONFIGS.parent / "docs" / "README.md").read_text()
    assert "synthetic" in readme.lower() and "--instance_dir" in readme and "--dataset_dir" in readme


def test_fewshot_new_slot_with_prior_preservation_then_inference(base, tmp_path):
    demo, out = base["demo"], base["out"]
    info = json.loads((out / "models" / "model_info.json").read_text())
    assert info["class_names"] == ["melanoma", "nevus"] and info["null_class_label"] == 2 and info["num_classes"] == 2
    base_state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert base_state[EMBED].shape[0] == 3  # 2 classes + null

    run = tmp_path / "run"  # a copy of the base run, so that tests do not share few-shot outputs
    (run / "models").mkdir(parents=True)
    for name in ("model.pt", "model_info.json"):
        (run / "models" / name).write_bytes((out / "models" / name).read_bytes())
    args = {"demo_dir": str(demo), "instance_dir": str(demo / "instance"), "output_dir": str(run), **FEWSHOT}
    _run("train_fewshot", **args)

    prior_dir = run / "prior_images" / "nevus"
    pngs = sorted(prior_dir.glob("prior_*.png"))
    assert len(pngs) == 6 and Image.open(pngs[0]).size == (16, 16) and Image.open(pngs[0]).mode == "RGB"
    manifest = json.loads((prior_dir / "prior_images.json").read_text())
    assert manifest["class_name"] == "nevus" and manifest["class_label"] == 1 and len(manifest["images"]) == 6
    fs = run / "models" / "fewshot"
    assert {"checkpoint.pt", "model.pt", "model_info.json"} <= {p.name for p in fs.iterdir()}
    fs_info = json.loads((fs / "model_info.json").read_text())
    assert fs_info["class_names"] == ["melanoma", "nevus", "blue_nevus"] and fs_info["null_class_label"] == 3
    assert fs_info["fewshot"]["new_slot"] and fs_info["fewshot"]["num_instance_images"] == 3
    assert fs_info["fewshot"]["num_class_images"] == 6 and fs_info["fewshot"]["prior_loss_weight"] == 1.0
    ckpt = torch.load(fs / "checkpoint.pt", weights_only=False)
    # epoch = max(3 instance images, 6 prior images) = 6 pairs; batches of 2 pairs (4 images: 2 instance + 2 prior)
    assert ckpt["trainer"]["iteration"] == 2 * (6 // 2)
    table = ckpt["network"][EMBED]
    assert table.shape[0] == 4  # melanoma, nevus, blue_nevus, null
    # no batch holds a melanoma label: its row keeps the base value bit for bit, the instance/parent rows train
    assert torch.equal(table[0], base_state[EMBED][0])
    assert not torch.equal(table[2], base_state[EMBED][1]) and not torch.equal(table[1], base_state[EMBED][1])
    rows = list(csv.DictReader(open(run / "fewshot_train_log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert (run / "samples" / "fewshot" / "training" / "epoch_0002.png").is_file()
    assert list((run / "tensorboard" / "fewshot").glob("events.out.tfevents.*"))

    # a second run (resumed, one more epoch) reuses the prior images: nothing is generated or rewritten
    mtimes = {p.name: os.stat(p).st_mtime_ns for p in prior_dir.iterdir()}
    _run("train_fewshot", **{**args, "max_epochs": 3})
    assert {p.name: os.stat(p).st_mtime_ns for p in prior_dir.iterdir()} == mtimes
    assert torch.load(fs / "checkpoint.pt", weights_only=False)["trainer"]["iteration"] == 3 * 3

    _run("inference", output_dir=str(run), fewshot=True, num_samples_per_class=1, num_inference_steps=2)
    samples = run / "samples" / "fewshot"
    assert sorted(p.name for p in samples.glob("sample_*.png")) == [
        "sample_00000_melanoma.png",
        "sample_00001_nevus.png",
        "sample_00002_blue_nevus.png",
    ]
    assert Image.open(samples / "sample_00002_blue_nevus.png").size == (16, 16)
    _run("inference", output_dir=str(run), num_samples=2, num_inference_steps=2)  # the base model still works
    assert sorted(p.name for p in (run / "samples").glob("sample_*.png")) == [
        "sample_00000_melanoma.png",
        "sample_00001_nevus.png",
    ]


def test_fewshot_existing_class_with_feature_alignment_and_evaluation(base, tmp_path):
    """Fine-tune the existing class 'melanoma' without a new slot and with feature alignment to the expert; then
    evaluate the fine-tuned model (base classes) and run the real vs real + synthetic augmentation study."""
    demo, out = base["demo"], base["out"]
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    for name in ("model.pt", "model_info.json"):
        (run / "models" / name).write_bytes((out / "models" / name).read_bytes())
    data = {"demo_dir": str(demo), "dataset_dir": str(demo / "lesions"), "output_dir": str(run)}
    _run("train_expert", **data, image_size=16, max_epochs=1, batch_size=8)
    assert (run / "models" / "expert" / "best_model.pt").is_file()
    _run("train_fewshot", demo_dir=str(demo), instance_dir=str(demo / "instance"), output_dir=str(run),
         **{**FEWSHOT, "max_epochs": 1}, instance_class="melanoma", parent_class="melanoma",
         feature_alignment=True)  # fmt: skip
    fs = run / "models" / "fewshot"
    info = json.loads((fs / "model_info.json").read_text())
    assert info["class_names"] == ["melanoma", "nevus"] and not info["fewshot"]["new_slot"]
    assert info["fewshot"]["instance_label"] == info["fewshot"]["parent_label"] == 0
    assert info["fewshot"]["feature_alignment"] is True
    ckpt = torch.load(fs / "checkpoint.pt", weights_only=False)
    assert ckpt["network"][EMBED].shape[0] == 3 and "projection" in ckpt
    assert len(list((run / "prior_images" / "melanoma").glob("prior_*.png"))) == 6

    _run("evaluate", **data, fewshot=True, reference_split="train", num_samples=6, num_seeds=1, samples_per_class=2,
         num_inference_steps=2)  # fmt: skip
    metrics = json.loads((run / "eval" / "fewshot" / "metrics.json").read_text())
    assert 0.0 <= metrics["generation_accuracy_mean"] <= 1.0 and metrics["num_synthetic"] == 6
    assert metrics["fid"] is None or metrics["fid"] >= 0

    _run("evaluate_augmented", **data, num_inference_steps=2, max_epochs=1, batch_size=8)
    aug = json.loads((run / "eval" / "augmentation" / "augmentation.json").read_text())
    assert aug["class_names"] == ["melanoma", "nevus"]
    assert aug["num_synthetic_train"] == aug["num_real_train"] > 0  # 50/50
    for key in ("accuracy_real_only", "accuracy_real_plus_synthetic"):
        assert 0.0 <= aug[key] <= 1.0
    assert aug["accuracy_gain"] == pytest.approx(aug["accuracy_real_plus_synthetic"] - aug["accuracy_real_only"])
    assert (run / "eval" / "augmentation" / "real_plus_synthetic_confusion_matrix.png").is_file()


def test_histo_feature_aligned_fewshot(tmp_path):
    """The same few-shot config in the histo_feature_aligned bundle (grey, 8 classes): an existing class from a few
    of its images (``max_instance_images``), feature alignment following the base model (off here)."""
    from medsyn_monai.apps.demo import create_demo

    configs = REPO / "bundles" / "histo_feature_aligned" / "configs"
    if not (configs / "train.json").is_file():
        pytest.skip("bundles/histo_feature_aligned has no train.json")
    demo = create_demo("histo", tmp_path / "demo", num_per_class=4, size=32)
    out = tmp_path / "run"
    bundle_run(config_file=str(configs / "train.json"), logging_file=LOGGING, dataset_dir=str(demo), demo_dir=str(demo),
               output_dir=str(out), feature_alignment=False, **TINY)  # fmt: skip
    bundle_run(config_file=str(configs / "train_fewshot.json"), logging_file=LOGGING, output_dir=str(out),
               instance_dir=str(demo / "tumour"), max_instance_images=3, **FEWSHOT)  # fmt: skip
    info = json.loads((out / "models" / "fewshot" / "model_info.json").read_text())
    assert info["bundle"] == "histo_feature_aligned" and info["in_channels"] == 1 and len(info["class_names"]) == 8
    few = info["fewshot"]
    assert few["instance_class"] == few["parent_class"] == "tumour" and not few["new_slot"]
    assert few["num_instance_images"] == 3 and few["num_class_images"] == 6 and few["feature_alignment"] is False
    pngs = sorted((out / "prior_images" / "tumour").glob("prior_*.png"))
    assert len(pngs) == 6 and Image.open(pngs[0]).mode == "L"
    ckpt = torch.load(out / "models" / "fewshot" / "checkpoint.pt", weights_only=False)
    assert ckpt["trainer"]["iteration"] == 2 * (6 // 2) and "projection" not in ckpt
