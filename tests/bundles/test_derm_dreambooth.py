"""The derm_dreambooth bundle's real configs through monai.bundle: base training, few-shot fine-tuning with prior
preservation (``train_fewshot.json``, with and without feature alignment), inference of both models, evaluation and
the augmentation study of the base or (``--model_subdir fewshot``) the fine-tuned model."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from medsyn_monai.apps.demo import create_demo
from medsyn_monai.data import PriorPreservationDataset
from tests.bundles._bundle import copy_models, log_messages

BUNDLE = "derm_dreambooth"
TINY = {"image_size": 16, "channels": [8, 16], "num_head_channels": 8, "batch_size": 8, "num_inference_steps": 2,
        "num_grid_samples": 3, "warmup_steps": 2, "cpu_bf16": False, "max_epochs": 1}  # fmt: skip
FEWSHOT = {"max_epochs": 2, "batch_size": 2, "num_class_images": 6, "prior_inference_steps": 2,
           "num_inference_steps": 2, "num_grid_samples": 3, "warmup_steps": 2, "cpu_bf16": False,
           "sample_interval": 0}  # fmt: skip
EMBED = "backbone.class_embedding.weight"
SLOT_LOGGER = "medsyn_monai.apps.fewshot.class_slot"
#: what the few-shot tests copy of the base run's models (so that they do not share few-shot outputs)
BASE_MODEL = ("model.pt", "model_info.json")


@pytest.fixture(scope="module")
def base(bundle, tmp_path_factory) -> dict[str, Path]:
    """A tiny demo (8 lesions per class, 3 instance images), its expert and a base model trained for one epoch."""
    root = tmp_path_factory.mktemp("derm")
    demo = create_demo("derm", root / "demo", num_per_class=8, num_instance=3)
    out = root / "run"
    data = {"demo_dir": str(demo), "dataset_dir": str(demo / "lesions"), "output_dir": str(out)}
    bundle.run("train_expert", **data, image_size=16, max_epochs=1, batch_size=8)
    bundle.run("train", **data, **TINY)
    return {"demo": demo, "out": out}


def test_defaults_and_metadata(bundle):
    train, fewshot, infer = bundle.parser("train"), bundle.parser("train_fewshot"), bundle.parser("inference")
    evaluate, augmented = bundle.parser("evaluate"), bundle.parser("evaluate_augmented")
    expert = bundle.parser("train_expert")
    assert train["dataset_dir"] == "data/derm_demo/lesions" and train["demo_dir"] == "data/derm_demo"
    assert train["cond_drop_prob"] == 0.1 and train["class_conditioning"] == "embedding" and train["in_channels"] == 3
    assert train["model_info"]["null_class_label"] == "@num_classes"
    assert train["feature_alignment"] is False and train["expert_input"] == "noisy" and train["projection"] == "linear"
    assert train["train"]["trainer"]["feature_alignment"] == "@alignment#loss"
    assert train["checkpointer"]["save_dict"]["projection"] == "@alignment#loss"
    assert fewshot["num_class_images"] == 100 and fewshot["prior_loss_weight"] == 1.0
    assert fewshot["instance_dir"] == "data/derm_demo/instance" and fewshot["instance_class"] == "blue_nevus"
    assert fewshot["parent_class"] == "nevus" and fewshot["with_prior_preservation"] is True
    assert fewshot["cond_drop_prob"] == 0.1  # from train.json
    # alignment follows the base model unless given; the image size, channels and schedule are the base model's
    assert "base_info.get('feature_alignment', False)" in fewshot["feature_alignment"]
    assert "base_info['image_size']" in fewshot["image_size"] and "base_info['scheduler']" in fewshot["beta_schedule"]
    assert "'prior_images'" in fewshot["class_dir"] and "'fewshot'" in fewshot["models_dir"]
    assert "'fewshot'" in fewshot["tensorboard_dir"] and "'fewshot'" in fewshot["samples_dir"]
    assert "fewshot_train_log.csv" in fewshot["train_log"]
    assert fewshot["train"]["dataset"]["_target_"] == "medsyn_monai.data.PriorPreservationDataset"
    weight_key = inspect.signature(PriorPreservationDataset).parameters["weight_key"].default
    assert fewshot["train"]["trainer"]["sample_weight_key"] == weight_key
    fewshot.update({"output_dir": "/x"})
    assert fewshot.get_parsed_content("base_ckpt") == "/x/models/model.pt"
    assert "fewshot" not in infer and infer["guidance_scale"] == 2.0
    for cfg in (evaluate, augmented):  # the base model unless --model_subdir fewshot
        assert cfg["model_subdir"] == ""
        cfg.update({"output_dir": "/x", "model_subdir": "fewshot"})
        assert cfg.get_parsed_content("ckpt_path") == "/x/models/fewshot/model.pt"
    assert evaluate.get_parsed_content("eval_dir") == "/x/eval/fewshot"
    assert augmented.get_parsed_content("eval_dir") == "/x/eval/fewshot/augmentation"
    assert expert["expert_network"] == "resnet18" and expert["max_epochs"] == 15
    meta = bundle.metadata()  # the model zoo's fields, the version in the changelog
    assert "synthetic" in meta["data_source"].lower()
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 3
    readme = (bundle.root / "docs" / "README.md").read_text()
    assert "synthetic" in readme.lower() and "--instance_dir" in readme and "--dataset_dir" in readme


def test_fewshot_new_slot_with_prior_preservation_then_inference_and_evaluation(bundle, base, tmp_path):
    demo, out = base["demo"], base["out"]
    info = bundle.model_info(out)
    assert info["class_names"] == ["melanoma", "nevus"] and info["null_class_label"] == 2 and info["num_classes"] == 2
    assert info["feature_alignment"] is False and info["network"]["architecture"] == "lightweight"
    base_state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert base_state[EMBED].shape[0] == 3  # 2 classes + null

    run = copy_models(out, tmp_path / "run", *BASE_MODEL, expert=True)
    args = {"demo_dir": str(demo), "instance_dir": str(demo / "instance"), "output_dir": str(run), **FEWSHOT}
    bundle.run("train_fewshot", **args)

    prior_dir = run / "prior_images" / "nevus"
    pngs = sorted(prior_dir.glob("prior_*.png"))
    assert len(pngs) == 6 and Image.open(pngs[0]).size == (16, 16) and Image.open(pngs[0]).mode == "RGB"
    manifest = json.loads((prior_dir / "prior_images.json").read_text())
    assert manifest["class_name"] == "nevus" and manifest["class_label"] == 1 and len(manifest["images"]) == 6
    fs = run / "models" / "fewshot"
    assert {"checkpoint.pt", "model.pt", "model_info.json"} <= {p.name for p in fs.iterdir()}
    fs_info = json.loads((fs / "model_info.json").read_text())
    assert fs_info["class_names"] == ["melanoma", "nevus", "blue_nevus"] and fs_info["null_class_label"] == 3
    assert fs_info["num_classes"] == 3 and fs_info["network"]["num_classes"] == 3  # the grown network is recorded
    assert fs_info["scheduler"] == info["scheduler"] and fs_info["image_size"] == 16 and fs_info["in_channels"] == 3
    few = fs_info["fewshot"]
    assert few["new_slot"] and few["instance_label"] == 2 and few["parent_label"] == 1
    assert few["num_instance_images"] == 3 and few["num_class_images"] == 6 and few["prior_loss_weight"] == 1.0
    assert few["with_prior_preservation"] is True and few["feature_alignment"] is False
    assert few["base_class_names"] == ["melanoma", "nevus"] and few["base_ckpt"] == "model.pt"  # no path in outputs
    assert few["base_sha256"] == hashlib.sha256((run / "models" / "model.pt").read_bytes()).hexdigest()
    ckpt = torch.load(fs / "checkpoint.pt", weights_only=True)
    # epoch = max(3 instance images, 6 prior images) = 6 pairs; batches of 2 pairs (4 images: 2 instance + 2 prior)
    assert ckpt["trainer"]["iteration"] == 2 * (6 // 2) and "projection" not in ckpt
    table = ckpt["network"][EMBED]
    assert table.shape[0] == 4  # melanoma, nevus, blue_nevus, null
    # no batch holds a melanoma label: its row keeps the base value bit for bit, the instance/parent rows train
    assert torch.equal(table[0], base_state[EMBED][0])
    assert not torch.equal(table[2], base_state[EMBED][1]) and not torch.equal(table[1], base_state[EMBED][1])
    rows = bundle.csv_rows(run / "fewshot_train_log.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2] and "mean_loss_align" not in rows[0]
    assert (run / "samples" / "fewshot" / "epoch_0002.png").is_file()
    assert list((run / "tensorboard" / "fewshot").glob("events.out.tfevents.*"))
    assert not (run / "train_log.csv").exists()  # the base run's log is not touched

    # a second run (resumed, one more epoch) reuses the prior images: nothing is generated or rewritten
    mtimes = {p.name: os.stat(p).st_mtime_ns for p in prior_dir.iterdir()}
    bundle.run("train_fewshot", **{**args, "max_epochs": 3})
    assert {p.name: os.stat(p).st_mtime_ns for p in prior_dir.iterdir()} == mtimes
    assert torch.load(fs / "checkpoint.pt", weights_only=True)["trainer"]["iteration"] == 3 * 3

    bundle.infer(run, ckpt_path=str(fs / "model.pt"), num_samples_per_class=1)
    samples = run / "samples"
    assert sorted(p.name for p in samples.glob("sample_*.png")) == [
        "sample_00000_melanoma.png",
        "sample_00001_nevus.png",
        "sample_00002_blue_nevus.png",
    ]
    assert Image.open(samples / "sample_00002_blue_nevus.png").size == (16, 16)
    base_run = tmp_path / "base_samples"
    bundle.infer(base_run, ckpt_path=str(run / "models" / "model.pt"), num_samples=2)  # the base model still works
    assert sorted(p.name for p in (base_run / "samples").glob("sample_*.png")) == [
        "sample_00000_melanoma.png",
        "sample_00001_nevus.png",
    ]

    # the fine-tuned model on the base classes (the new class has no real test images): eval/fewshot
    bundle.run("evaluate", demo_dir=str(demo), dataset_dir=str(demo / "lesions"), output_dir=str(run),
               model_subdir="fewshot", reference_split="train", num_samples=6, num_seeds=1, samples_per_class=2,
               num_inference_steps=2)  # fmt: skip
    ev = run / "eval" / "fewshot"
    ga = json.loads((ev / "generation_accuracy.json").read_text())
    assert ga["classes_evaluated"] == ["melanoma", "nevus"] and sum(map(sum, ga["generation_confusion_matrix"])) == 4
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["num_synthetic"] == 6 and metrics["num_real"] == 12  # the training split as reference
    assert 0.0 <= metrics["generation_accuracy_mean"] <= 1.0 and "generation_accuracy_blue_nevus" not in metrics
    assert not (run / "eval" / "metrics.json").exists()


def test_fewshot_existing_class_from_aligned_base_and_evaluation_on_cpu(bundle, base, tmp_path, caplog):
    """A base model trained with ``--feature_alignment true``; few-shot fine-tuning of the existing class 'melanoma'
    continues the alignment from the base checkpoint's projection; then the fine-tuned model is evaluated
    (``--model_subdir fewshot``) and goes through the real vs real + synthetic augmentation study. All on
    ``--device cpu``."""
    demo = base["demo"]
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    shutil.copytree(base["out"] / "models" / "expert", run / "models" / "expert")
    data = {"demo_dir": str(demo), "dataset_dir": str(demo / "lesions"), "output_dir": str(run), "device": "cpu"}
    bundle.run("train", **data, **TINY, feature_alignment="true")  # as the command line passes it
    models = run / "models"
    info = bundle.model_info(run)
    assert info["feature_alignment"] is True and info["alignment"]["expert_input"] == "noisy"
    base_ckpt = torch.load(models / "checkpoint.pt", weights_only=True)
    base_projection = base_ckpt["projection"]
    assert base_projection["projection.weight"].shape == (16, 512)  # ResNet-18 features -> 16 bottleneck channels
    assert not any("projection" in k for k in torch.load(models / "model.pt", weights_only=True))
    rows = bundle.csv_rows(run / "train_log.csv")
    assert 0.0 <= float(rows[0]["mean_loss_align"]) <= 2.0 and float(rows[0]["mean_loss_noise"]) >= 0.0

    with log_messages(caplog, SLOT_LOGGER) as messages:
        bundle.run("train_fewshot", **{**FEWSHOT, "max_epochs": 1}, demo_dir=str(demo),
                   instance_dir=str(demo / "instance"), output_dir=str(run), instance_class="melanoma",
                   parent_class="melanoma", device="cpu")  # fmt: skip
    assert f"projection initialised from {models / 'checkpoint.pt'}" in messages
    fs = models / "fewshot"
    fs_info = json.loads((fs / "model_info.json").read_text())
    assert fs_info["class_names"] == ["melanoma", "nevus"] and not fs_info["fewshot"]["new_slot"]
    assert fs_info["fewshot"]["instance_label"] == fs_info["fewshot"]["parent_label"] == 0
    assert fs_info["fewshot"]["feature_alignment"] is True and fs_info["feature_alignment"] is True
    ckpt = torch.load(fs / "checkpoint.pt", weights_only=True)
    assert ckpt["network"][EMBED].shape[0] == 3 and set(ckpt["projection"]) == set(base_projection)
    assert not torch.equal(ckpt["projection"]["projection.weight"], base_projection["projection.weight"])  # trained
    assert len(list((run / "prior_images" / "melanoma").glob("prior_*.png"))) == 6
    assert "mean_loss_align" in bundle.csv_rows(run / "fewshot_train_log.csv")[0]

    bundle.run("evaluate", **data, model_subdir="fewshot", reference_split="train", num_samples=6, num_seeds=1,
               samples_per_class=2, num_inference_steps=2)  # fmt: skip
    metrics = json.loads((run / "eval" / "fewshot" / "metrics.json").read_text())
    assert 0.0 <= metrics["generation_accuracy_mean"] <= 1.0 and metrics["num_synthetic"] == 6
    assert metrics["fid"] is None or metrics["fid"] >= 0

    bundle.run("evaluate_augmented", **data, model_subdir="fewshot", num_inference_steps=2, max_epochs=1, batch_size=8)
    aug = json.loads((run / "eval" / "fewshot" / "augmentation" / "augmentation.json").read_text())
    assert aug["class_names"] == ["melanoma", "nevus"] and aug["max_epochs"] == 1
    assert aug["num_synthetic_train"] == aug["num_real_train"] == 12  # 50/50
    assert aug["synthetic_per_class"] == {"melanoma": 6, "nevus": 6}
    for key in ("accuracy_real_only", "accuracy_real_plus_synthetic"):
        assert 0.0 <= aug[key] <= 1.0
    assert aug["accuracy_gain"] == pytest.approx(aug["accuracy_real_plus_synthetic"] - aug["accuracy_real_only"])
    aug_dir = run / "eval" / "fewshot" / "augmentation"
    assert (aug_dir / "real_plus_synthetic_confusion_matrix.png").is_file()
    assert not (run / "eval" / "augmentation").exists()


def test_evaluate_augmented_base_model(bundle, base, tmp_path):
    """``evaluate_augmented.json`` of the base model (default ``model_subdir``) into ``eval/augmentation``; the study
    draws synthetic images of the dataset's classes only."""
    demo = base["demo"]
    run = copy_models(base["out"], tmp_path / "run", *BASE_MODEL)
    bundle.run("evaluate_augmented", demo_dir=str(demo), dataset_dir=str(demo / "lesions"), output_dir=str(run),
               num_inference_steps=2, max_epochs=1, batch_size=8, synthetic_fraction=0.25)  # fmt: skip
    aug = json.loads((run / "eval" / "augmentation" / "augmentation.json").read_text())
    assert aug["num_real_train"] == 12 and aug["synthetic_fraction"] == 0.25
    assert aug["num_synthetic_train"] == 4 and sum(aug["synthetic_per_class"].values()) == 4  # 25 % of 16 images
    assert 0.0 <= aug["accuracy_real_plus_synthetic"] <= 1.0


def test_fewshot_alignment_switched_on_over_unaligned_base(bundle, base, tmp_path, caplog):
    """``--feature_alignment true`` on a few-shot run from a base model trained without it: a new projection (none to
    load from the base checkpoint)."""
    demo = base["demo"]
    run = copy_models(base["out"], tmp_path / "run", *BASE_MODEL, "checkpoint.pt", expert=True)
    with log_messages(caplog, SLOT_LOGGER) as messages:
        bundle.run("train_fewshot", **{**FEWSHOT, "max_epochs": 1, "num_class_images": 2}, demo_dir=str(demo),
                   instance_dir=str(demo / "instance"), output_dir=str(run), feature_alignment="True")  # fmt: skip
    assert not any(m.startswith("projection initialised") for m in messages)
    assert any(m.startswith("new class slot 2 ('blue_nevus')") for m in messages)
    fs = run / "models" / "fewshot"
    assert json.loads((fs / "model_info.json").read_text())["fewshot"]["feature_alignment"] is True
    ckpt = torch.load(fs / "checkpoint.pt", weights_only=True)
    assert ckpt["projection"]["projection.weight"].shape == (16, 512)
