"""The cxr_cfg bundle's real configs through monai.bundle, with tiny overrides: ``train.json`` and ``inference.json``
stand alone; ``train_expert.json``, ``evaluate.json``, ``evaluate_pretraining.json`` and ``evaluate_utility.json`` are
overlays on train.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import BundleWorkflow
from PIL import Image

from medsyn_monai.apps.demo import create_demo
from medsyn_monai.networks.nets import network_from_config
from medsyn_monai.networks.schedulers import DEFAULT_NUM_INFERENCE_STEPS, DEFAULT_SCHEDULER_TYPE

BUNDLE = "cxr_cfg"
DEMO = ("cxr", {"num_per_class": 12})  # tiny_demo: 12 synthetic chest X-ray phantoms (64 px) per class
# one split for every config; 8 test images so that the k-NN metrics (nearest_k 5) have enough real images
SPLIT = {"val_fraction": 0.2, "test_fraction": 0.3}
# float32 on CPU: for such tiny networks bf16 autocast is slower than float32
TINY = {"image_size": 16, "channels": [8, 16], "num_head_channels": 8, "cross_attention_dim": 8, "batch_size": 8,
        "num_inference_steps": 2, "num_grid_samples": 4, "warmup_steps": 2, "cpu_bf16": False, **SPLIT}  # fmt: skip
OLD_INFO_KEYS = {"architecture", "network_kwargs", "beta_schedule", "dataset_dir", "class_conditioning"}


@pytest.fixture(scope="module")
def tiny_ood(tmp_path_factory) -> Path:
    """An out-of-distribution reference set: 8 RGB cell crops (32 px)."""
    return create_demo("cells", tmp_path_factory.mktemp("ood") / "cells", num_per_class=4, size=32)


@pytest.fixture(scope="module")
def trained(bundle, tmp_path_factory, tiny_demo) -> Path:
    """The output_dir of the expert (train_expert.json) and a label-embedding model trained for one epoch on it."""
    out = tmp_path_factory.mktemp("cxr_run")
    common = {"dataset_dir": str(tiny_demo), "output_dir": str(out), **SPLIT}
    bundle.run("train_expert", **common, max_epochs=1, image_size=16, batch_size=8)
    bundle.run("train", **{**common, **TINY}, max_epochs=1, sample_interval=1)
    return out


def test_defaults(bundle):
    """The documented defaults: demo data at 28 px, cosine schedule, CFG with condition dropout, DDIM-50 sampling."""
    train, infer, expert = bundle.parser("train"), bundle.parser("inference"), bundle.parser("train_expert")
    ev, pretraining = bundle.parser("evaluate"), bundle.parser("evaluate_pretraining")
    utility = bundle.parser("evaluate_utility")
    for cfg in (train, expert, ev, pretraining, utility):  # the overlays keep train.json's data and split
        assert cfg["dataset_dir"] == cfg["demo_dir"] == "data/cxr_demo"
        assert cfg["val_fraction"] == cfg["test_fraction"] == 0.1
    assert train["image_size"] == expert["image_size"] == 28 and train["in_channels"] == 1
    assert 28 % 2 ** (len(train["channels"]) - 1) == 0  # the U-Net halves 28 -> 14 -> 7
    assert train["beta_schedule"] == "cosine" and train["num_train_timesteps"] == 1000
    assert train["cond_drop_prob"] == 0.1 and train["loss_type"] == "l2"
    assert train["class_conditioning"] == "embedding" and train["architecture"] == "monai"
    assert train["network_def"]["_target_"] == "medsyn_monai.networks.nets.ClassConditionedDiffusionUNet"
    assert train["train"]["trainer"]["null_class_label"] == "@num_classes"
    assert train["model_info"]["null_class_label"] == "@num_classes"
    assert infer["scheduler_type"] == DEFAULT_SCHEDULER_TYPE
    assert infer["num_inference_steps"] == DEFAULT_NUM_INFERENCE_STEPS
    assert infer["guidance_scale"] == 3.0 and infer["guidance_rescale"] == 0.0
    assert infer["num_samples_per_class"] is None and infer["class_labels"] is None
    assert infer["sampler"]["_target_"].endswith("DiffusionSampler.from_checkpoint")
    assert expert["expert_network"] == "resnet18" and expert["expert"]["_target_"].endswith("ExpertTraining")
    assert ev["guidance_scales"] == [0.0, 1.0, 3.0, 5.0] and ev["ood_dir"] == "data/cells_demo"
    # the measured PneumoniaMNIST recipe (docs): v-prediction, EMA 0.995 with a linear warm-up, w = 1 for pre-training
    assert train["prediction_type"] == "v_prediction" and train["ema_decay"] == 0.995 and train["ema_adaptive"] is False
    assert pretraining["guidance_scale"] == 1.0 and pretraining["samples_per_class"] == 500
    # the utility table: 5 seeds; 1:1 and 1:2 mixes; 100 / 10 / 1 % real for fine-tuning; 4 settings
    assert utility["num_seeds"] == 5 and utility["mix_ratios"] == [1, 2]
    assert utility["real_fractions"] == [1.0, 0.1, 0.01]
    assert utility["augment_options"] == utility["class_weighted_options"] == [False, True]
    assert utility["samples_per_class"] is None and utility["guidance_scale"] == 1.0
    assert utility["train#augmentation#enabled"] is True and utility["train#dataset#transform"] is None
    # the overlays read the trained model's settings from its model_info.json, next to output_dir/models/model.pt
    for cfg in (ev, pretraining, utility):
        cfg.update({"output_dir": "/x"})
        assert cfg.get_parsed_content("ckpt_path") == "/x/models/model.pt"
        assert cfg["image_size"] == "$@model_info['image_size']"
    assert ev.get_parsed_content("expert_ckpt") == utility.get_parsed_content("expert_ckpt")
    assert ev.get_parsed_content("expert_ckpt") == "/x/models/expert/best_model.pt"
    assert utility.get_parsed_content("eval_dir") == "/x/eval/utility"


def test_check_properties_and_metadata(bundle, tmp_path, tiny_demo):
    workflow = bundle.workflow(tiny_demo, tmp_path, **TINY)
    # every required train property is there, and the optional ones have the ids MONAI expects
    assert BundleWorkflow.check_properties(workflow) == [] and workflow.check_properties() == []
    assert type(workflow.trainer).__name__ == "DiffusionTrainer" and workflow.max_epochs == 100
    assert len(workflow.train_dataset) == 12 and Path(workflow.bundle_root).resolve() == bundle.root
    meta = bundle.metadata()  # the model zoo's fields, the version in the changelog
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 1
    labels = meta["network_data_format"]["inputs"]["class_labels"]["channel_def"]
    assert labels["0"] == "normal" and labels["1"] == "pneumonia" and labels["2"].startswith("null")


def test_expert_and_embedding_training_outputs(bundle, trained):
    expert = trained / "models" / "expert"
    assert {"best_model.pt", "best_metric.json", "model_info.json"} <= {p.name for p in expert.iterdir()}
    assert (trained / "eval" / "expert" / "test_metrics.json").is_file()

    ckpt = bundle.check_training_outputs(trained, epochs=1)
    assert "mean_loss_align" not in bundle.csv_rows(trained / "train_log.csv")[0]
    info = bundle.model_info(trained)
    assert info["bundle"] == "cxr_cfg" and not OLD_INFO_KEYS & set(info)
    net = info["network"]
    assert net["_target_"] == "medsyn_monai.networks.nets.ClassConditionedDiffusionUNet"
    assert net["architecture"] == "monai" and net["class_conditioning"] == "embedding" and net["num_classes"] == 2
    assert net["network_kwargs"]["channels"] == [8, 16] and net["network_kwargs"]["attention_levels"] == [False, True]
    assert info["scheduler"] == {"num_train_timesteps": 1000, "schedule": "cosine", "prediction_type": "v_prediction"}
    assert info["num_classes"] == 2 and info["null_class_label"] == 2 and info["class_names"] == ["normal", "pneumonia"]
    assert info["cond_drop_prob"] == 0.1 and info["image_size"] == 16 and info["in_channels"] == 1
    assert info["loss_type"] == "l2" and info["augment"] is False and info["intensity_range"] == [0.0, 255.0]
    state = torch.load(trained / "models" / "model.pt", weights_only=True)
    assert state["backbone.class_embedding.weight"].shape[0] == 3  # 2 classes + the null label
    assert not any(k.startswith("label_embedding") for k in state)
    network_from_config(net).load_state_dict(state)  # the record rebuilds the trained network (strict loading)
    assert ckpt["trainer"]["iteration"] == 1  # 12 training images (50 % of 24), batch 8, drop_last
    assert "projection" not in ckpt  # no feature alignment in this bundle
    grid = Image.open(trained / "samples" / "training" / "epoch_0001.png")
    assert grid.mode == "L" and grid.size == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2)  # 4 samples, columns = 2 classes


def test_inference_per_class_with_rescale(bundle, trained, tmp_path):
    """Per-class counts of one class, guidance with rescale, from the trained model into another output_dir."""
    bundle.infer(tmp_path, ckpt_path=str(trained / "models" / "model.pt"), num_samples_per_class=3, class_labels=[1],
                 guidance_rescale=0.7, device="cpu")  # fmt: skip
    samples = tmp_path / "samples"
    assert [p.name for p in sorted(samples.glob("sample_*.png"))] == [f"sample_0000{i}_pneumonia.png" for i in range(3)]
    png = Image.open(samples / "sample_00000_pneumonia.png")
    assert png.mode == "L" and png.size == (16, 16) and np.asarray(png).std() > 0
    assert [r["label"] for r in bundle.csv_rows(samples / "samples.csv")] == ["1", "1", "1"]


@pytest.mark.parametrize("scheduler_type", ["dpmpp_2m", "dpmpp_3m", "unipc", "dpmpp_2m_sde"])
def test_inference_with_the_solvers(bundle, trained, tmp_path, scheduler_type):
    """Each solver samples the trained model with guidance at a step count that does not divide T."""
    bundle.infer(tmp_path, ckpt_path=str(trained / "models" / "model.pt"), num_samples=2, scheduler_type=scheduler_type,
                 num_inference_steps=7, device="cpu")  # fmt: skip
    images = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "samples").glob("sample_*.png"))]
    assert len(images) == 2 and all(im.std() > 0 for im in images)


def test_evaluate_guidance_sweep_and_ood_reference(bundle, trained, tiny_demo, tiny_ood):
    bundle.run("evaluate", dataset_dir=str(tiny_demo), output_dir=str(trained), **SPLIT, ood_dir=str(tiny_ood),
               num_samples=8, num_seeds=1, samples_per_class=2, num_inference_steps=2, guidance_scales=[0.0, 3.0],
               sweep_samples_per_class=2, batch_size=8, device="cpu")  # fmt: skip
    ev = trained / "eval"
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


def test_evaluate_pretraining(bundle, trained, tiny_demo):
    """The seed's downstream score: classifiers pre-trained on synthetic images, fine-tuned on 50 / 0 % real."""
    bundle.run("evaluate_pretraining", dataset_dir=str(tiny_demo), output_dir=str(trained), **SPLIT,
               samples_per_class=4, num_seeds=2, num_inference_steps=2, real_fractions=[0.5, 0.0], pretrain_epochs=1,
               finetune_epochs=1, real_epochs=1, classifier_input_size=16, batch_size=8,
               sample_batch_size=8)  # fmt: skip
    pre = trained / "eval" / "pretraining"
    m = json.loads((pre / "metrics.json").read_text())
    for row in ("synthetic_only", "synthetic_then_real_50", "real_only_50"):
        assert 0.0 <= m[f"accuracy_{row}_mean"] <= 1.0 and m[f"accuracy_{row}_std"] >= 0.0, row
    assert not any("_100_" in k for k in m)  # only the fractions asked for
    report = json.loads((pre / "pretraining.json").read_text())
    assert report["settings"]["num_synthetic"] == 8 and report["settings"]["samples_per_class"] == [4, 4]
    assert report["settings"]["classifier_seeds"] == [0, 1] and report["settings"]["real_fractions"] == [0.5, 0.0]
    assert report["settings"]["num_real_test"] == 8 and report["settings"]["num_real_train"] == 12
    assert [r["num_real"] for r in report["runs"]["real_only_50"]] == [6, 6]  # half of each class (6 + 6 real)
    assert [r["num_real"] for r in report["runs"]["synthetic_only"]] == [0, 0]
    assert "| synthetic only | 0 |" in (pre / "pretraining.md").read_text()


def test_evaluate_utility(bundle, trained, tiny_demo):
    """The classifier utility table on the demo: 5 rows x 4 settings x 2 seeds, and the dataset-pair table."""
    bundle.run("evaluate_utility", dataset_dir=str(tiny_demo), output_dir=str(trained), **SPLIT, num_seeds=2,
               mix_ratios=[1], real_fractions=[0.5], max_epochs=1, pretrain_epochs=1, finetune_epochs=1,
               num_inference_steps=2, classifier_input_size=16, batch_size=8, sample_batch_size=8,
               ssim_pairs=20, subset_epochs="scaled")  # fmt: skip
    out = trained / "eval" / "utility"
    m = json.loads((out / "metrics.json").read_text())
    rows = ["real_only", "synthetic_only", "real_plus_synthetic_1to1", "synthetic_then_real_50", "real_only_50"]
    settings = ["noaug_unweighted", "noaug_weighted", "aug_unweighted", "aug_weighted"]
    for row in rows:
        for setting in settings:
            assert 0.0 <= m[f"accuracy_{row}_{setting}_mean"] <= 1.0 and m[f"accuracy_{row}_{setting}_std"] >= 0.0
    assert not any("_100_" in k or "1to2" in k for k in m)  # only the ratio and fraction asked for
    report = json.loads((out / "utility.json").read_text())
    assert report["settings"]["classifier_seeds"] == [0, 1] and report["settings"]["num_real_train"] == 12
    per_class = report["settings"]["synthetic_per_class"]
    assert per_class["real_plus_synthetic_1to1"] == report["settings"]["real_per_class"] == per_class["synthetic_only"]
    assert report["settings"]["train_transform"] == "OptionalCompose"  # train.json's augmentation, switched on
    # --subset_epochs scaled: the runs on 50 % of the real images train 1 / 0.5 = 2 epochs
    assert report["settings"]["epochs_on_subset"] == {"synthetic_then_real_50": 2, "real_only_50": 2}
    assert [r["num_real"] for r in report["runs"]["real_only_50"]["aug_weighted"]] == [6, 6]
    assert [len(report["runs"][row][s]) for row in rows for s in settings] == [2] * 20
    pairs = {(p["set_a"], p["set_b"]): p for p in report["dataset_pairs"]}
    assert pairs[("real_train", "real_test")]["num_b"] == 8 and pairs[("synthetic_a", "synthetic_b")]["num_a"] == 6
    assert all(p["fid"] is not None and p["fid"] >= 0.0 and p["ssim"] is not None for p in pairs.values())  # expert
    lines = bundle.csv_rows(out / "utility.csv")
    assert len(lines) == 20 and {"accuracy_mean", "accuracy_std", "roc_auc_mean", "roc_auc_std"} <= set(lines[0])
    assert "## Dataset pairs" in (out / "utility.md").read_text()
    assert Image.open(out / "utility.png").size[1] == 960


def test_evaluate_utility_with_confidence_filter(bundle, trained, tiny_demo):
    """--filter_confidence puts the expert's confidence filter between the sampler and the study; its acceptance is
    reported (threshold 0: every image passes, so the tiny 1-epoch expert cannot make the run fall short)."""
    out = trained / "filtered"
    bundle.run("evaluate_utility", dataset_dir=str(tiny_demo), output_dir=str(trained), **SPLIT, num_seeds=1,
               augment_options=[False], class_weighted_options=[False], pretrain_epochs=1, num_inference_steps=2,
               classifier_input_size=16, batch_size=8, sample_batch_size=8, ssim_pairs=20, filter_confidence=0.0,
               eval_dir=str(out), **{"utility#conditions": ["synthetic_only"],
                                     "utility#pair_table": False})  # fmt: skip
    report = json.loads((out / "utility.json").read_text())
    accepted = report["settings"]["synthetic_filter"]
    generated = report["settings"]["synthetic_per_class"]["generated"]
    assert [accepted[c]["kept"] for c in ("0", "1")] == [accepted[c]["generated"] for c in ("0", "1")] == generated
    assert all(a["acceptance"] == 1.0 for a in accepted.values())
    assert list(report["runs"]) == ["synthetic_only"]


@pytest.mark.parametrize("architecture", ["lightweight", "monai"])
def test_cross_attention_train_and_inference(bundle, tmp_path, tiny_demo, architecture):
    out = tmp_path / "run"
    bundle.run("train", dataset_dir=str(tiny_demo), output_dir=str(out), **TINY, max_epochs=1, sample_interval=1,
         class_conditioning="cross_attention", architecture=architecture, loss_type="l1")  # fmt: skip
    info = bundle.model_info(out)
    net = info["network"]
    assert net["class_conditioning"] == "cross_attention" and net["architecture"] == architecture
    assert net["cross_attention_dim"] == 8 and info["loss_type"] == "l1"
    kwargs = {"lightweight": "convs_per_level", "monai": "num_res_blocks"}  # the chosen architecture's arguments
    assert kwargs[architecture] in net["network_kwargs"] and len(set(kwargs.values()) & set(net["network_kwargs"])) == 1
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert state["label_embedding.weight"].shape == (3, 8)  # the label is a cross-attention token, null label last
    assert not any("class_embedding" in k for k in state)
    assert any(".attn2.to_k." in k for k in state)  # cross-attention layers read the label token
    bundle.infer(out, num_samples=4, guidance_scale=2.0)
    samples = out / "samples"
    names = [r["class_name"] for r in bundle.csv_rows(samples / "samples.csv")]
    assert names == ["normal", "pneumonia", "normal", "pneumonia"]
    assert Image.open(samples / "grid.png").mode == "L"


def test_pneumoniamnist_npz_layout(bundle, tmp_path, shared_data):
    """The real PneumoniaMNIST .npz (a file or a folder holding it) goes through the training data path at 28 px."""
    npz = shared_data / "pneumoniamnist" / "pneumoniamnist.npz"
    if not npz.is_file():
        pytest.skip(f"{npz} is absent")
    for root in (npz, npz.parent):
        parser = bundle.parser("train")
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
