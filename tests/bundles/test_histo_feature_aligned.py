"""The histo_feature_aligned bundle's real configs through monai.bundle, with tiny overrides: feature-aligned training
(on by default) wired from parts (``alignment#expert``, ``alignment#loss``), inference, evaluation, the baseline and
alignment options, and few-shot fine-tuning (``train_fewshot.json`` overlay) with and without prior preservation."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from medsyn_monai.apps.demo.histo import HISTO_DEMO_CLASSES
from tests.bundles._bundle import copy_models, log_messages

BUNDLE = "histo_feature_aligned"
DEMO = ("histo", {"num_per_class": 5, "size": 32})  # tiny_demo: 5 synthetic 32-px texture tiles per class, 8 classes
SPLIT = {"val_fraction": 0.2, "test_fraction": 0.3}
# float32 on CPU and a ResNet-18 expert: tiny and fast (the defaults are bf16 and ResNet-50)
TINY = {"image_size": 16, "channels": [8, 16], "batch_size": 8, "num_inference_steps": 2, "num_grid_samples": 8,
        "warmup_steps": 2, "cpu_bf16": False, "max_epochs": 1}  # fmt: skip
FEWSHOT = {"max_instance_images": 2, "num_class_images": 4, "prior_batch_size": 4, "prior_inference_steps": 2,
           "batch_size": 2, "max_epochs": 1, "warmup_steps": 1, "num_inference_steps": 2, "num_grid_samples": 4,
           "cpu_bf16": False}  # fmt: skip
SLOT_LOGGER = "medsyn_monai.apps.fewshot.class_slot"
#: a run's base model as few-shot fine-tuning starts from it (weights, full checkpoint, model_info.json)
BASE_MODEL = ("model.pt", "checkpoint.pt", "model_info.json")


@pytest.fixture(scope="module")
def expert_ckpt(bundle, tmp_path_factory, tiny_demo) -> Path:
    """A ResNet-18 expert trained for one epoch by the bundle's train_expert.json overlay (16 px)."""
    out = tmp_path_factory.mktemp("expert_run")
    bundle.run("train_expert", dataset_dir=str(tiny_demo), output_dir=str(out), **SPLIT, max_epochs=1, image_size=16,
               batch_size=8, expert_network="resnet18")  # fmt: skip
    return out / "models" / "expert" / "best_model.pt"


@pytest.fixture(scope="module")
def aligned(bundle, tmp_path_factory, tiny_demo, expert_ckpt) -> dict:
    """A feature-aligned model (the default) trained for one epoch through a ConfigWorkflow, with its parts."""
    out = tmp_path_factory.mktemp("aligned_run")
    workflow = bundle.config_workflow("train", dataset_dir=str(tiny_demo), output_dir=str(out),
                                      expert_ckpt=str(expert_ckpt), **SPLIT, **TINY)  # fmt: skip
    workflow.run()
    expert = workflow.parser.get_parsed_content("alignment#expert")
    loss = workflow.parser.get_parsed_content("alignment#loss")
    trainer = workflow.parser.get_parsed_content("train#trainer")
    workflow.finalize()
    return {"out": out, "expert": expert, "loss": loss, "trainer": trainer}


def test_defaults_and_contract_values(bundle):
    train, expert = bundle.parser("train"), bundle.parser("train_expert")
    evaluate, fewshot = bundle.parser("evaluate"), bundle.parser("train_fewshot")
    assert train["dataset_dir"] == train["demo_dir"] == "data/histo_demo"
    assert train["feature_alignment"] is True and train["expert_input"] == "noisy"
    assert train["projection"] == "linear" and train["align_direction"] == "expert_to_diffusion"
    assert train["align_module"] is None and train["alignment_loss_weight"] == 0.5
    assert train["noise_loss_weight"] == 1.0 and train["cond_drop_prob"] == 0.1 and train["center_features"] is False
    assert train["align_spatial"] is False and train["spatial_norm"] is None
    assert train["alignment_stop_fraction"] is None
    assert train["in_channels"] == 1 and train["image_size"] == 64 and train["architecture"] == "lightweight"
    assert train["alignment"]["expert"]["_target_"].endswith("FeatureExtractor.from_expert_checkpoint")
    assert train["alignment"]["loss"]["_target_"].endswith("FeatureAlignmentLoss.between")
    assert train["train"]["trainer"]["alignment_expert"] == "@alignment#expert"
    assert expert["expert_network"] == "resnet50" and expert["expert_input_size"] == "@image_size"
    assert fewshot["instance_dir"] == "data/histo_demo/tumour" and fewshot["max_instance_images"] == 5
    assert fewshot["instance_class"] == fewshot["parent_class"] == "tumour"
    assert fewshot["with_prior_preservation"] is True and fewshot["num_class_images"] == 100
    for cfg in (train, evaluate, fewshot):
        cfg.update({"output_dir": "/x"})
        assert cfg.get_parsed_content("expert_ckpt") == "/x/models/expert/best_model.pt"
    assert fewshot.get_parsed_content("base_ckpt") == evaluate.get_parsed_content("ckpt_path") == "/x/models/model.pt"
    assert fewshot.get_parsed_content("models_dir") == "/x/models/fewshot"
    meta = bundle.metadata()  # the model zoo's fields, the version in the changelog
    labels = meta["network_data_format"]["inputs"]["class_labels"]["channel_def"]
    assert [labels[str(i)] for i in range(8)] == list(HISTO_DEMO_CLASSES) and labels["8"].startswith("null")


def test_expert(expert_ckpt):
    expert_dir = expert_ckpt.parent
    assert {"best_model.pt", "best_metric.json", "model_info.json"} <= {p.name for p in expert_dir.iterdir()}
    assert (expert_dir.parents[1] / "eval" / "expert" / "test_metrics.json").is_file()
    info = json.loads((expert_dir / "model_info.json").read_text())
    assert info["bundle"] == "histo_feature_aligned" and info["class_names"] == list(HISTO_DEMO_CLASSES)


def test_aligned_training(bundle, aligned, expert_ckpt):
    out, align, loss = aligned["out"], aligned["expert"], aligned["loss"]
    # the trainer got both parts; the expert used for alignment is bit-identical to its checkpoint (BatchNorm buffers
    # included) and still in eval mode
    assert aligned["trainer"].feature_alignment is loss and aligned["trainer"].alignment_expert is align
    expert_state = torch.load(expert_ckpt, weights_only=True)
    after = align.model.state_dict()
    assert set(after) == set(expert_state) and all(torch.equal(after[k], expert_state[k]) for k in after)
    assert any(k.endswith("running_var") for k in after) and not align.training and not align.model.training

    models = out / "models"
    ckpt = torch.load(models / "checkpoint.pt", weights_only=True)
    assert {"network", "ema", "optimizer", "lr_scheduler", "trainer", "projection"} <= set(ckpt)
    assert ckpt["projection"]["projection.weight"].shape == (16, 512)  # ResNet-18 features -> 16 bottleneck channels
    assert torch.equal(ckpt["projection"]["projection.weight"], loss.projection.weight.detach().cpu())
    assert not any("projection" in k for k in torch.load(models / "model.pt", weights_only=True))
    info = bundle.model_info(out)
    assert info["feature_alignment"] is True and info["alignment"]["expert_input"] == "noisy"
    assert info["alignment"]["projection"] == "linear" and info["alignment"]["direction"] == "expert_to_diffusion"
    assert info["alignment"]["center"] is False and info["alignment"]["alignment_loss_weight"] == 0.5
    assert info["alignment"]["spatial"] is False and info["alignment"]["spatial_norm"] is False
    assert info["alignment"]["stop_fraction"] is None and not aligned["loss"].spatial
    assert (
        info["num_classes"] == 8 and info["null_class_label"] == 8 and info["class_names"] == list(HISTO_DEMO_CLASSES)
    )
    assert info["network"]["architecture"] == "lightweight" and info["network"]["network_kwargs"]["channels"] == [8, 16]
    assert info["scheduler"]["schedule"] == "linear_beta" and info["image_size"] == 16 and info["in_channels"] == 1
    rows = bundle.csv_rows(out / "train_log.csv")
    assert len(rows) == 1 and 0.0 <= float(rows[0]["mean_loss_align"]) <= 2.0
    assert math.isfinite(float(rows[0]["mean_loss_noise"]))
    assert float(rows[0]["mean_align_proj_std"]) >= 0.0 and float(rows[0]["mean_align_target_std"]) > 0.0
    acc = EventAccumulator(str(next((out / "tensorboard").glob("events.out.tfevents.*"))))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/epoch_loss_noise", "train/epoch_loss_align", "train/epoch_align_proj_std"} <= tags


def test_aligned_inference_and_evaluation(bundle, aligned, tiny_demo, expert_ckpt, tmp_path):
    ckpt_path = str(aligned["out"] / "models" / "model.pt")
    bundle.infer(tmp_path, ckpt_path=ckpt_path, num_samples=8)
    names = sorted(p.name for p in (tmp_path / "samples").glob("sample_*.png"))
    assert names == [f"sample_{i:05d}_{c}.png" for i, c in enumerate(HISTO_DEMO_CLASSES)]
    assert Image.open(tmp_path / "samples" / names[0]).mode == "L"

    bundle.run("evaluate", dataset_dir=str(tiny_demo), output_dir=str(tmp_path), ckpt_path=ckpt_path,
               expert_ckpt=str(expert_ckpt), **SPLIT, num_samples=16, num_seeds=2, samples_per_class=2,
               num_inference_steps=2, batch_size=8)  # fmt: skip
    ev = tmp_path / "eval"
    ga = json.loads((ev / "generation_accuracy.json").read_text())
    assert len(ga["generation_accuracy_per_seed"]) == 2
    assert set(ga["generation_accuracy_per_class"]) == set(HISTO_DEMO_CLASSES)
    assert sum(map(sum, ga["generation_confusion_matrix"])) == 2 * 2 * 8
    metrics = json.loads((ev / "metrics.json").read_text())
    for c in HISTO_DEMO_CLASSES:
        assert f"ssim_intra_synthetic_{c}" in metrics and f"ssim_intra_real_{c}" in metrics
    assert 0.0 <= metrics["generation_accuracy_mean"] <= 1.0 and metrics["num_synthetic"] == 16
    assert metrics["num_real"] == 16  # 30 % of 5 tiles per class: 2 test tiles of each of the 8 classes
    for png in ("generation_confusion_synthetic.png", "generation_confusion_real.png", "confusion_synthetic.png"):
        assert (ev / png).is_file(), png


def test_baseline_and_alignment_options(bundle, tmp_path, tiny_demo, expert_ckpt):
    common = {"dataset_dir": str(tiny_demo), **SPLIT, **TINY}
    # baseline: no expert anywhere (none was trained), "false" as the command line passes it, on --device cpu
    base = tmp_path / "baseline"
    bundle.run("train", **common, output_dir=str(base), feature_alignment="false", device="cpu")
    ckpt = torch.load(base / "models" / "checkpoint.pt", weights_only=True)
    assert "projection" not in ckpt and {"network", "ema"} <= set(ckpt)
    info = bundle.model_info(base)
    assert info["feature_alignment"] is False
    header = next(csv.reader(open(base / "train_log.csv")))
    assert "mean_loss_align" not in header and "mean_loss_noise" not in header and "mean_loss" in header

    # MONAI U-Net (default point: input of the middle block), clean-image expert input, REPA direction, MLP projector,
    # centred features
    out = tmp_path / "options"
    bundle.run("train", **common, output_dir=str(out), expert_ckpt=str(expert_ckpt), architecture="monai",
               num_head_channels=8, norm_num_groups=4, expert_input="clean", projection="mlp",
               align_direction="diffusion_to_expert", projection_hidden_dim=32, center_features="true")  # fmt: skip
    proj = torch.load(out / "models" / "checkpoint.pt", weights_only=True)["projection"]
    shapes = {k: tuple(v.shape) for k, v in proj.items() if k.endswith("weight")}
    assert shapes == {
        "projection.0.weight": (32, 16),
        "projection.2.weight": (32, 32),
        "projection.4.weight": (512, 32),
    }
    info = bundle.model_info(out)
    assert info["network"]["architecture"] == "monai" and info["network"]["network_kwargs"]["norm_num_groups"] == 4
    alignment = info["alignment"]
    assert alignment["direction"] == "diffusion_to_expert" and alignment["expert_input"] == "clean"
    assert alignment["projection"] == "mlp" and alignment["center"] is True
    assert "mean_loss_align" in bundle.csv_rows(out / "train_log.csv")[0]

    with pytest.raises(Exception, match="FeatureAlignmentLoss.between") as error:
        bundle.run("train", **common, output_dir=str(tmp_path / "bad"), expert_ckpt=str(expert_ckpt),
                   align_module="no.such.module")  # fmt: skip
    assert "unknown module_name 'no.such.module'" in str(error.value.__cause__)
    with pytest.raises(Exception, match="from_expert_checkpoint") as error:
        bundle.run("train", **common, output_dir=str(tmp_path / "no_expert"))
    assert isinstance(error.value.__cause__, FileNotFoundError) and "train_expert.json" in str(error.value.__cause__)


def test_spatial_conv_alignment_at_the_middle_block_with_a_stop(bundle, tmp_path, tiny_demo):
    """The remedies of the alignment literature through the bundle's keys, as on the command line: spatial alignment
    (U-REPA) with iREPA's convolutional projector and spatial normalisation, at the U-Net's middle block, switched off
    halfway (HASTE). The expert sees 64 px (a 2 x 2 ResNet map; at 16 px its map would be a single location)."""
    expert_run = tmp_path / "expert64"
    bundle.run("train_expert", dataset_dir=str(tiny_demo), output_dir=str(expert_run), **SPLIT, max_epochs=1,
               image_size=16, batch_size=8, expert_network="resnet18", expert_input_size=64)  # fmt: skip
    out = tmp_path / "spatial"
    workflow = bundle.config_workflow("train", dataset_dir=str(tiny_demo), output_dir=str(out), **SPLIT, **TINY,
                                      expert_ckpt=str(expert_run / "models" / "expert" / "best_model.pt"),
                                      align_spatial="true", projection="conv", align_module="middle_block",
                                      alignment_stop_fraction=0.5)  # fmt: skip
    workflow.run()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    workflow.finalize()
    loss = trainer.feature_alignment
    assert loss.spatial and loss.spatial_norm and trainer.alignment_stop_fraction == 0.5
    assert trainer.feature_hook.module_name == "backbone.down_blocks.1.1"  # the lightweight U-Net's middle stage
    assert trainer.alignment_expert.feature_map(torch.zeros(2, 1, 16, 16)).shape == (2, 512, 2, 2)

    ckpt = torch.load(out / "models" / "checkpoint.pt", weights_only=True)
    assert ckpt["projection"]["projection.weight"].shape == (16, 512, 3, 3)  # 3x3 conv: expert map -> U-Net channels
    iterations = ckpt["trainer"]["iteration"]
    aligned = math.ceil(0.5 * iterations)
    info = bundle.model_info(out)["alignment"]
    assert info["spatial"] is True and info["spatial_norm"] is True and info["projection"] == "conv"
    assert info["module"] == "middle_block" and info["stop_fraction"] == 0.5
    row = bundle.csv_rows(out / "train_log.csv")[0]
    assert iterations >= 2 and 0.0 <= float(row["mean_loss_align"]) <= 2.0
    assert float(row["mean_align_weight"]) == pytest.approx(0.5 * aligned / iterations)  # weight 0.5, then 0
    assert float(row["mean_align_proj_std"]) > 0.0 and float(row["mean_align_target_std"]) > 0.0


def test_fewshot_with_and_without_prior_preservation_same_budget(bundle, tmp_path, tiny_demo):
    """train_fewshot.json from a baseline model on two 'tumour' tiles (an existing class: no new slot): with prior
    preservation (generated parent-class images, mixed batches) and without it, the same iterations per epoch; the
    fine-tuned model samples."""
    base = tmp_path / "base"
    bundle.run("train", dataset_dir=str(tiny_demo), output_dir=str(base), **SPLIT, **TINY, feature_alignment=False)
    iterations = {}
    for prior in (True, False):
        run = copy_models(base, tmp_path / f"prior_{prior}", *BASE_MODEL)
        bundle.run("train_fewshot", output_dir=str(run), instance_dir=str(tiny_demo / "tumour"),
                   with_prior_preservation=str(prior).lower(), **FEWSHOT)  # fmt: skip
        fs = run / "models" / "fewshot"
        info = json.loads((fs / "model_info.json").read_text())
        assert info["bundle"] == "histo_feature_aligned" and info["in_channels"] == 1 and info["image_size"] == 16
        assert info["class_names"] == list(HISTO_DEMO_CLASSES) and info["null_class_label"] == 8
        few = info["fewshot"]
        assert few["instance_class"] == few["parent_class"] == "tumour" and not few["new_slot"]
        assert few["instance_label"] == few["parent_label"] == 7
        assert few["with_prior_preservation"] is prior and few["num_instance_images"] == 2
        assert few["num_class_images"] == (4 if prior else 0) and few["feature_alignment"] is False
        prior_pngs = sorted((run / "prior_images" / "tumour").glob("prior_*.png"))
        assert len(prior_pngs) == (4 if prior else 0)
        if prior:
            assert Image.open(prior_pngs[0]).mode == "L" and Image.open(prior_pngs[0]).size == (16, 16)
        ckpt = torch.load(fs / "checkpoint.pt", weights_only=True)
        assert "projection" not in ckpt
        iterations[prior] = ckpt["trainer"]["iteration"]
        bundle.infer(run, ckpt_path=str(fs / "model.pt"), num_samples=8)
        assert len(list((run / "samples").glob("sample_*.png"))) == 8
    # num_repeats = ceil(4 prior images / 2 instance images) = 2 in both runs: 4 pairs per epoch, batches of 2
    assert iterations == {True: 2, False: 2}


def test_fewshot_from_aligned_base_loads_projection(bundle, aligned, tiny_demo, expert_ckpt, tmp_path, caplog):
    """Few-shot fine-tuning of an aligned base model keeps aligning (the base model_info says so) and starts from the
    projection saved in the base run's checkpoint.pt."""
    run = copy_models(aligned["out"], tmp_path / "run", *BASE_MODEL)
    base_projection = torch.load(run / "models" / "checkpoint.pt", weights_only=True)["projection"]
    with log_messages(caplog, SLOT_LOGGER) as messages:
        workflow = bundle.config_workflow("train_fewshot", output_dir=str(run), instance_dir=str(tiny_demo / "tumour"),
                                          expert_ckpt=str(expert_ckpt), **FEWSHOT)  # fmt: skip
    assert f"projection initialised from {run / 'models' / 'checkpoint.pt'}" in messages
    loss = workflow.parser.get_parsed_content("alignment#loss")
    start = loss.state_dict()
    assert set(start) == set(base_projection) and all(torch.equal(start[k], base_projection[k]) for k in start)
    workflow.run()
    workflow.finalize()
    fs = run / "models" / "fewshot"
    info = json.loads((fs / "model_info.json").read_text())
    assert info["feature_alignment"] is True and info["fewshot"]["feature_alignment"] is True
    projection = torch.load(fs / "checkpoint.pt", weights_only=True)["projection"]
    assert not torch.equal(projection["projection.weight"], base_projection["projection.weight"])  # and trains on
    rows = bundle.csv_rows(run / "fewshot_train_log.csv")
    assert len(rows) == 1 and 0.0 <= float(rows[0]["mean_loss_align"]) <= 2.0
