"""The histo_feature_aligned bundle's real configs through monai.bundle, with tiny overrides."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.bundle import run as bundle_run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from medsyn_monai.apps.demo import create_demo
from medsyn_monai.apps.demo.histo import HISTO_DEMO_CLASSES

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "histo_feature_aligned" / "configs"
LOGGING = str(CONFIGS / "logging.conf")
SPLIT = {"val_fraction": 0.2, "test_fraction": 0.3}
# float32 on CPU and a ResNet-18 expert: tiny and fast (the defaults are bf16 and ResNet-50)
TINY = {"image_size": 16, "channels": [8, 16], "batch_size": 8, "num_inference_steps": 2, "num_grid_samples": 8,
        "warmup_steps": 2, "cpu_bf16": False, "max_epochs": 1}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_histo(tmp_path_factory) -> Path:
    """5 synthetic 64-px texture tiles per class, 8 classes."""
    return create_demo("histo", tmp_path_factory.mktemp("histo") / "demo", num_per_class=5)


def _run(name: str, **overrides) -> None:
    bundle_run(config_file=str(CONFIGS / f"{name}.json"), logging_file=LOGGING, **overrides)


@pytest.fixture(scope="module")
def expert_ckpt(tmp_path_factory, tiny_histo) -> Path:
    """A ResNet-18 expert trained for one epoch by the bundle's train_expert.json (16 px)."""
    out = tmp_path_factory.mktemp("expert_run")
    _run("train_expert", dataset_dir=str(tiny_histo), output_dir=str(out), **SPLIT, max_epochs=1, image_size=16,
         batch_size=8, expert_network="resnet18")  # fmt: skip
    assert {"best_model.pt", "model_info.json"} <= {p.name for p in (out / "models" / "expert").iterdir()}
    assert (out / "eval" / "expert" / "test_metrics.json").is_file()
    return out / "models" / "expert" / "best_model.pt"


def test_defaults_and_contract_values():
    train, expert, evaluate = ConfigParser(), ConfigParser(), ConfigParser()
    train.read_config(str(CONFIGS / "train.json"))
    expert.read_config(str(CONFIGS / "train_expert.json"))
    evaluate.read_config(str(CONFIGS / "evaluate.json"))
    assert train["dataset_dir"] == train["demo_dir"] == "data/histo_demo"
    assert train["feature_alignment"] is True and train["expert_input"] == "noisy"
    assert train["projection"] == "linear" and train["align_direction"] == "expert_to_diffusion"
    assert train["align_module"] is None and train["alignment_loss_weight"] == 0.5
    assert train["noise_loss_weight"] == 1.0 and train["cond_drop_prob"] == 0.1
    assert train["in_channels"] == 1 and train["image_size"] == 64
    assert expert["expert_network"] == "resnet50" and expert["expert_input_size"] == "@image_size"
    train.update({"output_dir": "/x"})
    evaluate.update({"output_dir": "/x"})
    assert train.get_parsed_content("expert_ckpt") == "/x/models/expert/best_model.pt"
    assert evaluate.get_parsed_content("expert_ckpt") == "/x/models/expert/best_model.pt"
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"]
    labels = meta["network_data_format"]["inputs"]["class_labels"]["channel_def"]
    assert [labels[str(i)] for i in range(8)] == list(HISTO_DEMO_CLASSES) and labels["8"].startswith("null")


def test_aligned_training_inference_evaluation(tmp_path, tiny_histo, expert_ckpt):
    out = tmp_path / "run"
    common = {"dataset_dir": str(tiny_histo), "output_dir": str(out), "expert_ckpt": str(expert_ckpt), **SPLIT}
    expert_state = torch.load(expert_ckpt, weights_only=True)

    workflow = ConfigWorkflow(config_file=str(CONFIGS / "train.json"), workflow_type="train", logging_file=LOGGING,
                              **common, **TINY)  # fmt: skip
    workflow.initialize()
    workflow.run()
    align = workflow.parser.get_parsed_content("alignment")
    workflow.finalize()
    # the expert used for alignment: bit-identical to its checkpoint (BatchNorm buffers included), still in eval mode
    after = align.expert.state_dict()
    assert set(after) == set(expert_state) and all(torch.equal(after[k], expert_state[k]) for k in after)
    assert any(k.endswith("running_var") for k in after) and not align.expert.training

    models = out / "models"
    ckpt = torch.load(models / "checkpoint.pt", weights_only=False)
    assert {"network", "ema", "optimizer", "lr_scheduler", "trainer", "projection"} <= set(ckpt)
    assert ckpt["projection"]["projection.weight"].shape == (16, 512)  # ResNet-18 features -> 16 bottleneck channels
    assert torch.equal(ckpt["projection"]["projection.weight"], align.projection.weight.detach().cpu())
    assert not any("projection" in k for k in torch.load(models / "model.pt", weights_only=True))
    info = json.loads((models / "model_info.json").read_text())
    assert info["feature_alignment"] is True and info["alignment"]["expert_input"] == "noisy"
    assert info["alignment"]["expert_ckpt"] == str(expert_ckpt)
    assert (
        info["num_classes"] == 8 and info["null_class_label"] == 8 and info["class_names"] == list(HISTO_DEMO_CLASSES)
    )
    assert info["architecture"] == "lightweight" and info["network_kwargs"]["channels"] == [8, 16]
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert len(rows) == 1 and 0.0 <= float(rows[0]["mean_loss_align"]) <= 2.0
    assert math.isfinite(float(rows[0]["mean_loss_noise"]))
    acc = EventAccumulator(str(next((out / "tensorboard").glob("events.out.tfevents.*"))))
    acc.Reload()
    assert {"train/epoch_loss_noise", "train/epoch_loss_align"} <= set(acc.Tags()["scalars"])

    _run("inference", output_dir=str(out), num_samples=8, num_inference_steps=2)
    names = sorted(p.name for p in (out / "samples").glob("sample_*.png"))
    assert names == [f"sample_{i:05d}_{c}.png" for i, c in enumerate(HISTO_DEMO_CLASSES)]

    _run("evaluate", **common, num_samples=16, num_seeds=2, samples_per_class=2, num_inference_steps=2)
    ev = out / "eval"
    ga = json.loads((ev / "generation_accuracy.json").read_text())
    assert len(ga["generation_accuracy_per_seed"]) == 2 and set(ga["generation_accuracy_per_class"]) == set(
        HISTO_DEMO_CLASSES
    )
    assert sum(map(sum, ga["generation_confusion_matrix"])) == 2 * 2 * 8
    metrics = json.loads((ev / "metrics.json").read_text())
    for c in HISTO_DEMO_CLASSES:
        assert f"ssim_intra_synthetic_{c}" in metrics and f"ssim_intra_real_{c}" in metrics
    assert 0.0 <= metrics["generation_accuracy_mean"] <= 1.0 and metrics["num_synthetic"] == 16
    for png in ("generation_confusion_synthetic.png", "generation_confusion_real.png", "confusion_synthetic.png"):
        assert (ev / png).is_file(), png


def test_baseline_and_alignment_options(tmp_path, tiny_histo, expert_ckpt):
    common = {"dataset_dir": str(tiny_histo), **SPLIT, **TINY, "channels": [8, 16]}
    # baseline: no expert anywhere (none was trained), "false" as the command line passes it
    base = tmp_path / "baseline"
    _run("train", **common, output_dir=str(base), feature_alignment="false")
    ckpt = torch.load(base / "models" / "checkpoint.pt", weights_only=False)
    assert "projection" not in ckpt and {"network", "ema"} <= set(ckpt)
    info = json.loads((base / "models" / "model_info.json").read_text())
    assert info["feature_alignment"] is False and info["alignment"] is None
    header = next(csv.reader(open(base / "train_log.csv")))
    assert "mean_loss_align" not in header and "mean_loss" in header

    # MONAI U-Net (default point: input of the middle block), clean-image expert input, REPA direction, MLP projector
    out = tmp_path / "options"
    _run("train", **common, output_dir=str(out), expert_ckpt=str(expert_ckpt), architecture="monai",
         num_head_channels=8, norm_num_groups=4, expert_input="clean", projection="mlp",
         align_direction="diffusion_to_expert", projection_hidden_dim=32)  # fmt: skip
    proj = torch.load(out / "models" / "checkpoint.pt", weights_only=False)["projection"]
    shapes = {k: tuple(v.shape) for k, v in proj.items() if k.endswith("weight")}
    assert shapes == {
        "projection.0.weight": (32, 16),
        "projection.2.weight": (32, 32),
        "projection.4.weight": (512, 32),
    }
    info = json.loads((out / "models" / "model_info.json").read_text())
    assert info["architecture"] == "monai" and info["alignment"]["direction"] == "diffusion_to_expert"

    with pytest.raises(Exception, match="from_expert_checkpoint") as error:
        _run("train", **common, output_dir=str(tmp_path / "bad"), expert_ckpt=str(expert_ckpt),
             align_module="no.such.module")  # fmt: skip
    assert "unknown module_name 'no.such.module'" in str(error.value.__cause__)
    with pytest.raises(Exception, match="from_expert_checkpoint") as error:
        _run("train", **common, output_dir=str(tmp_path / "no_expert"))
    assert "train_expert.json" in str(error.value.__cause__)


def test_fewshot_with_and_without_prior_preservation_same_budget(tmp_path, tiny_histo):
    """train_fewshot.json from a baseline model on two 'tumour' tiles: with prior preservation (generated parent-class
    images, mixed batches) and without it, the same iterations per epoch; the fine-tuned model samples."""
    base = tmp_path / "base"
    _run("train", dataset_dir=str(tiny_histo), output_dir=str(base), **SPLIT, **TINY, feature_alignment=False)
    fewshot = {"instance_dir": str(tiny_histo / "tumour"), "max_instance_images": 2, "num_class_images": 4,
               "prior_batch_size": 4, "prior_inference_steps": 2, "batch_size": 2, "max_epochs": 1, "warmup_steps": 1,
               "num_inference_steps": 2, "num_grid_samples": 4, "cpu_bf16": False}  # fmt: skip
    iterations = {}
    for prior in (True, False):
        run = tmp_path / f"prior_{prior}"
        (run / "models").mkdir(parents=True)
        for name in ("model.pt", "model_info.json"):
            (run / "models" / name).write_bytes((base / "models" / name).read_bytes())
        _run("train_fewshot", output_dir=str(run), with_prior_preservation=str(prior).lower(), **fewshot)
        fs = run / "models" / "fewshot"
        info = json.loads((fs / "model_info.json").read_text())
        assert info["fewshot"]["with_prior_preservation"] is prior and info["fewshot"]["num_instance_images"] == 2
        assert info["class_names"] == list(HISTO_DEMO_CLASSES)  # 'tumour' is an existing class: no new slot
        prior_pngs = sorted((run / "prior_images" / "tumour").glob("prior_*.png"))
        assert len(prior_pngs) == (4 if prior else 0)
        iterations[prior] = torch.load(fs / "checkpoint.pt", weights_only=False)["trainer"]["iteration"]
        _run("inference", output_dir=str(run), ckpt_path=str(fs / "model.pt"), num_samples=8, num_inference_steps=2)
        assert len(list((run / "samples").glob("sample_*.png"))) == 8
    # num_repeats = ceil(4 prior images / 2 instance images) = 2 in both runs: 4 pairs per epoch, batches of 2
    assert iterations == {True: 2, False: 2}
