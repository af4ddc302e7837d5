"""The cell_ddpm bundle's real configs through monai.bundle, with tiny overrides: train.json and inference.json alone,
the train_expert / evaluate / steps_ablation overlays stacked on train.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medsyn_monai.apps.demo import create_demo
from medsyn_monai.networks.schedulers import DEFAULT_SCHEDULER_TYPE

BUNDLE = "cell_ddpm"
CLASSES = ["parasitized", "uninfected"]
DEMO = ("cells", {"num_per_class": 8})  # tiny_demo: 8 synthetic RGB cell crops (64 px) per class
# one split for the diffusion model, its expert and the evaluation; 8 test crops of 24, enough real images for the
# k-NN metrics (nearest_k 5)
SPLIT = {"val_fraction": 0.2, "test_fraction": 0.3}


@pytest.fixture(scope="module")
def demo_run(bundle, tmp_path_factory) -> Path:
    """2 epochs on the default data path: ``dataset_dir`` == ``demo_dir``, absent, so the demo (200 crops per class)
    is written first."""
    root = tmp_path_factory.mktemp("cells_demo_run")
    bundle.train(root / "run", root / "demo_data", demo_dir=str(root / "demo_data"), sample_interval=1, batch_size=32)
    return root


@pytest.fixture(scope="module")
def expert_run(bundle, tmp_path_factory) -> tuple[Path, Path]:
    """(data, output_dir): a diffusion model (1 epoch) and its expert (train_expert.json overlay, 2 epochs)."""
    root = tmp_path_factory.mktemp("cells_expert_run")
    data, out = create_demo("cells", root / "cells", num_per_class=12), root / "run"
    bundle.train(out, data, max_epochs=1, **SPLIT)
    bundle.train(out, data, "train_expert", max_epochs=2, device="cpu", **SPLIT)
    return data, out


def test_check_properties_and_metadata(bundle, tmp_path, tiny_demo):
    workflow = bundle.workflow(tiny_demo, tmp_path)
    assert bundle.missing_required(workflow) == []
    assert workflow.max_epochs == 100 and workflow.dataset_dir == str(tiny_demo)
    meta = bundle.metadata()
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 3
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 3


def test_optional_property_ids(bundle, tmp_path, tiny_demo):
    assert bundle.workflow(tiny_demo, tmp_path).check_properties() == []


def test_defaults(bundle):
    """The documented defaults: demo data, 3 channels, v-prediction, conditional, augmentation, no NIfTI; the steps
    ablation's T variants and DDIM step counts."""
    train, infer, steps = bundle.parser("train"), bundle.parser("inference"), bundle.parser("steps_ablation")
    assert train["dataset_dir"] == train["demo_dir"] == "data/cells_demo"
    assert train["in_channels"] == 3 and train["conditional"] is True and train["augment"] is True
    assert train["prediction_type"] == "v_prediction" and train["num_train_timesteps"] == 1000
    assert train["network_def"]["_target_"] == "medsyn_monai.networks.nets.LightweightDiffusionUNet"
    assert train.get_parsed_content("device") in ("cpu", "cuda")  # a plain string, like --device cpu
    assert infer["save_nifti"] is False and infer["save_png"] is True and infer["guidance_scale"] == 1.0
    assert infer["scheduler_type"] == DEFAULT_SCHEDULER_TYPE and infer["class_labels"] is None
    assert steps["seeds"] == [0] and steps["sampling_steps"] == [10, 25, 50, 100] and steps["image_size"] == 32
    assert {v["scheduler"]["num_train_timesteps"] for v in steps["variants"].values()} == {250, 500, 1000}
    assert steps["output_dir"] == "runs/cell_ddpm_steps" and steps["dataset_dir"] == "data/cells_demo"


def test_augmentation_is_dihedral(bundle, tmp_path, tiny_demo):
    """``augment`` switches random flips / 90-degree rotations of the cached crops on and off."""

    def dataset(augment):
        parser = bundle.parser("train")
        parser.update({"dataset_dir": str(tiny_demo), "output_dir": str(tmp_path), "image_size": 16,
                       "augment": augment})  # fmt: skip
        return parser.get_parsed_content("train#dataset")

    plain = dataset("false")  # as the command line gives it
    assert tuple(plain.images.shape[1:]) == (3, 16, 16)
    assert plain.images.min() >= -1 and plain.images.max() <= 1 and plain.images.min() == -1  # black background
    for _ in range(3):
        assert all(torch.equal(plain[i]["image"], plain.images[i]) for i in range(4))

    ds = dataset(True)
    assert torch.equal(ds.images, plain.images)  # augmentation is not cached
    seen = set()
    for _ in range(12):
        for i in range(3):
            out = ds[i]["image"]
            assert type(out) is torch.Tensor and out.shape == (3, 16, 16)
            cached = ds.images[i]
            variants = [torch.rot90(f, k, dims=(1, 2)) for f in (cached, cached.flip(1)) for k in range(4)]
            matches = [j for j, v in enumerate(variants) if torch.equal(out, v)]
            assert matches, "augmented image is not a flip/rotation of the cached crop"
            seen.add(matches[0])
    assert len(seen) >= 3  # random, not a fixed transform


def test_train_rgb_on_default_demo(bundle, demo_run):
    demo, out = demo_run / "demo_data", demo_run / "run"
    assert (demo / "README.md").is_file()
    assert len(list((demo / "parasitized").glob("*.png"))) == 200 and len(list((demo / "uninfected").glob("*.png")))
    ckpt = bundle.check_training_outputs(out, epochs=2)
    assert ckpt["trainer"]["iteration"] == 2 * (320 // 32)  # 80 % train split of 400 crops, batch 32
    info = bundle.model_info(out)
    assert info["bundle"] == "cell_ddpm" and info["in_channels"] == 3 and info["image_size"] == 16
    assert info["class_names"] == CLASSES and info["num_classes"] == 2 and info["augment"] is True
    assert info["intensity_range"] == [0.0, 255.0]
    net = info["network"]
    assert net["channels"] == [8, 16] and net["in_channels"] == net["out_channels"] == 3
    assert net["num_class_embeds"] == 2
    assert info["scheduler"] == {"num_train_timesteps": 1000, "schedule": "linear_beta",
                                 "prediction_type": "v_prediction"}  # fmt: skip
    grids = sorted((out / "samples" / "training").iterdir())
    assert [p.name for p in grids] == ["epoch_0001.png", "epoch_0002.png"]
    grid = Image.open(grids[-1])
    assert grid.mode == "RGB" and grid.size == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2)  # 4 samples, columns = 2 classes


def test_inference_rgb(bundle, demo_run, tmp_path):
    bundle.infer(tmp_path, ckpt_path=str(demo_run / "run" / "models" / "model.pt"), num_samples=3)
    samples = tmp_path / "samples"
    pngs = sorted(samples.glob("sample_*.png"))
    assert [p.name for p in pngs] == [f"sample_0000{i}_{CLASSES[i % 2]}.png" for i in range(3)]
    assert not list(samples.glob("*.nii.gz"))  # save_nifti is off by default
    first = Image.open(pngs[0])
    assert first.mode == "RGB" and first.size == (16, 16)
    pixels = np.asarray(first)
    assert pixels.dtype == np.uint8 and pixels.std() > 0
    # the PNG file has the same orientation as the first tile of grid.png (2 px padding)
    tile = np.asarray(Image.open(samples / "grid.png"))[2:18, 2:18]
    assert np.abs(tile.astype(int) - pixels.astype(int)).max() <= 1
    assert [r["class_name"] for r in bundle.csv_rows(samples / "samples.csv")] == [CLASSES[0], CLASSES[1], CLASSES[0]]


def test_inference_one_class_with_nifti(bundle, demo_run, tmp_path):
    """One class, DDIM with another step count and seed, NIfTI switched on with a command-line boolean."""
    bundle.infer(tmp_path, ckpt_path=str(demo_run / "run" / "models" / "model.pt"), num_samples=2,
                 num_inference_steps=3, class_labels=[1], seed=1, save_nifti="on", device="cpu")  # fmt: skip
    samples = tmp_path / "samples"
    assert sorted(p.name for p in samples.glob("sample_*.nii.gz")) == [
        "sample_00000_uninfected.nii.gz",
        "sample_00001_uninfected.nii.gz",
    ]
    assert len(list(samples.glob("sample_*_uninfected.png"))) == 2


def test_grey_variant(bundle, tmp_path, tiny_demo):
    """``in_channels 1``: RGB crops are converted to grey; grey 8- and 16-bit PNGs are accepted as they are."""
    data = tmp_path / "data"
    shutil.copytree(tiny_demo, data)
    rgb = np.asarray(Image.open(data / "parasitized" / "cell_0000.png"))
    Image.fromarray(rgb.mean(-1).astype(np.uint8)).save(data / "parasitized" / "grey8.png")
    Image.fromarray((rgb.mean(-1) * 257).astype(np.uint16)).save(data / "uninfected" / "grey16.png")
    assert Image.open(data / "uninfected" / "grey16.png").mode == "I;16"
    out = tmp_path / "run"
    bundle.train(out, data, max_epochs=1, in_channels=1, sample_interval=1)
    info = bundle.model_info(out)
    assert info["in_channels"] == 1 and info["class_names"] == CLASSES
    assert info["network"]["in_channels"] == info["network"]["out_channels"] == 1
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert state["stem.conv.weight"].shape[1] == 1 and state["out_conv.weight"].shape[0] == 1  # grey in, grey out
    assert Image.open(out / "samples" / "training" / "epoch_0001.png").mode == "L"
    bundle.infer(out, num_samples=2)
    png = Image.open(out / "samples" / "sample_00000_parasitized.png")
    assert png.mode == "L" and png.size == (16, 16)


def test_nih_layout_and_unconditional(bundle, tmp_path):
    """The NIH malaria layout (``cell_images/Parasitized``, ``cell_images/Uninfected``): crops of various sizes and
    aspect ratios, PNG and JPEG, a ``Thumbs.db`` beside them; and the ``conditional false`` option."""
    root = tmp_path / "cell_images"
    rng = np.random.default_rng(0)
    for name in ("Parasitized", "Uninfected"):
        (root / name).mkdir(parents=True)
        for i in range(5):
            h, w = (int(s) for s in rng.integers(100, 150, 2))
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            img.save(root / name / (f"C{i}_thinF_IMG_cell_{i}.png" if i else "C0_thinF_IMG_cell_0.jpg"))
        (root / name / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 not an image")
    out = tmp_path / "run"
    bundle.train(out, root, max_epochs=1, val_fraction=0.0, test_fraction=0.0)
    info = bundle.model_info(out)
    assert info["class_names"] == ["Parasitized", "Uninfected"] and info["in_channels"] == 3
    assert torch.load(out / "models" / "checkpoint.pt", weights_only=True)["trainer"]["iteration"] == 10 // 8

    out2 = tmp_path / "run_uncond"
    bundle.train(out2, root, max_epochs=1, val_fraction=0.0, test_fraction=0.0, conditional="false", augment="false")
    info = bundle.model_info(out2)
    assert info["num_classes"] is None and info["class_names"] is None and info["augment"] is False
    assert info["network"]["num_class_embeds"] is None
    bundle.infer(out2, num_samples=2)
    assert sorted(p.name for p in (out2 / "samples").glob("*.png")) == [
        "grid.png",
        "sample_00000.png",
        "sample_00001.png",
    ]


def test_train_expert_overlay(bundle, expert_run):
    """train.json + train_expert.json: an RGB ResNet-18 expert on the same data and split."""
    _, out = expert_run
    expert = out / "models" / "expert"
    assert {"best_model.pt", "best_metric.json", "model_info.json"} <= {p.name for p in expert.iterdir()}
    info = bundle.model_info(out, "expert")
    assert info["bundle"] == "cell_ddpm" and info["kind"] == "expert" and info["image_size"] == 16
    assert info["num_classes"] == 2 and info["class_names"] == CLASSES
    net = info["network"]
    assert net["name"] == "resnet18" and net["in_channels"] == 3 and net["num_classes"] == 2
    state = torch.load(expert / "best_model.pt", weights_only=True)
    assert any(v.ndim == 4 and v.shape[1] == 3 for v in state.values())  # an RGB first convolution
    report = json.loads((out / "eval" / "expert" / "test_metrics.json").read_text())
    assert report["num_samples"] == 8 and sum(map(sum, report["confusion_matrix"])) == 8
    assert 0.0 <= report["accuracy"] <= 1.0
    assert (out / "eval" / "expert" / "val_confusion_matrix.png").is_file()
    assert [int(r["epoch"]) for r in bundle.csv_rows(out / "expert_train_log.csv")] == [1, 2]
    assert list((out / "tensorboard" / "expert").glob("events.out.tfevents.*"))


def test_evaluate_overlay(bundle, expert_run, tmp_path):
    """train.json + evaluate.json: expert accuracies, generation accuracy over seeds, chi-square / KL tests, FID."""
    data, out = expert_run
    ev = tmp_path / "eval"
    bundle.run("evaluate", dataset_dir=str(data), output_dir=str(out), eval_dir=str(ev), num_samples=8, num_seeds=2,
               samples_per_class=2, num_inference_steps=2, device="cpu", **SPLIT)  # fmt: skip
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


def test_steps_ablation_overlay(bundle, expert_run, tmp_path):
    """train.json + steps_ablation.json: train-time T variants x DDIM sampling steps, scored by the expert that
    train_expert.json wrote to the same output_dir."""
    data, trained = expert_run
    out = tmp_path / "steps"
    shutil.copytree(trained / "models" / "expert", out / "models" / "expert")
    variants = {f"T={t}": {"scheduler": {"num_train_timesteps": t}} for t in (100, 200)}
    bundle.train(out, data, "steps_ablation", max_epochs=1, num_samples=8, sampling_steps=[1, 2], seeds=[0],
                 variants=variants, device="cpu", **SPLIT)  # fmt: skip
    table = json.loads((out / "ablation.json").read_text())
    assert set(table["variants"]) == {f"T={t}, {s} steps" for t in (100, 200) for s in (1, 2)}
    for row in table["variants"].values():
        assert row["sample_seconds_per_image_mean"] > 0 and row["fid_mean"] >= 0
        assert [r["seed"] for r in row["runs"]] == [0]
    assert table["variants"]["T=200, 2 steps"]["num_inference_steps"] == 2
    info = bundle.model_info(out / "T=200" / "seed_0")
    assert info["scheduler"]["num_train_timesteps"] == 200 and info["scheduler"]["prediction_type"] == "v_prediction"
    assert info["in_channels"] == 3 and info["image_size"] == 16 and info["network"]["channels"] == [8, 16]
    assert "sampling s/img" in (out / "ablation.md").read_text()
