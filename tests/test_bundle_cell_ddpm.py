"""The cell_ddpm bundle's real configs through monai.bundle, with tiny overrides."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.bundle import run as bundle_run
from PIL import Image

from medsyn_monai.apps.demo import create_demo

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "cell_ddpm" / "configs"
TRAIN, INFER = str(CONFIGS / "train.json"), str(CONFIGS / "inference.json")
LOGGING = str(CONFIGS / "logging.conf")
# float32 on CPU: for such tiny networks bf16 autocast is slower than float32
TINY = {"image_size": 16, "channels": [8, 16], "batch_size": 8, "num_inference_steps": 2, "num_grid_samples": 4,
        "warmup_steps": 2, "cpu_bf16": False}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_cells(tmp_path_factory) -> Path:
    """8 synthetic RGB cell crops (64 px) per class: ``parasitized/``, ``uninfected/``."""
    return create_demo("cells", tmp_path_factory.mktemp("cells") / "demo", num_per_class=8)


def _train(output_dir, dataset_dir, **overrides):
    kwargs = {**TINY, "dataset_dir": str(dataset_dir), "output_dir": str(output_dir), "max_epochs": 2, **overrides}
    bundle_run(config_file=TRAIN, logging_file=LOGGING, **kwargs)


def _infer(output_dir, **overrides):
    bundle_run(config_file=INFER, output_dir=str(output_dir), logging_file=LOGGING, **overrides)


def test_check_properties_and_metadata(tmp_path, tiny_cells):
    overrides = {k: v for k, v in TINY.items() if k != "warmup_steps"}
    workflow = ConfigWorkflow(config_file=TRAIN, workflow_type="train", meta_file=str(CONFIGS / "metadata.json"),
                              logging_file=LOGGING, dataset_dir=str(tiny_cells), output_dir=str(tmp_path),
                              **overrides)  # fmt: skip
    workflow.initialize()
    assert workflow.check_properties() == []  # nothing missing
    assert workflow.max_epochs == 100 and workflow.dataset_dir == str(tiny_cells)
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    for key in ("version", "changelog", "monai_version", "pytorch_version", "numpy_version",
                "required_packages_version", "name", "task", "description", "authors", "data_source",
                "network_data_format", "intended_use", "references"):  # fmt: skip
        assert meta[key], key
    assert meta["version"] in meta["changelog"]
    assert set(meta["network_data_format"]) >= {"inputs", "outputs"}
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 3


def test_defaults():
    """The documented defaults: demo data, 3 channels, v-prediction, conditional, augmentation, no NIfTI."""
    train, infer = ConfigParser(), ConfigParser()
    train.read_config(TRAIN)
    infer.read_config(INFER)
    assert train["dataset_dir"] == train["demo_dir"] == "data/cells_demo"
    assert train["in_channels"] == 3 and train["conditional"] is True and train["augment"] is True
    assert train["prediction_type"] == "v_prediction" and train["num_train_timesteps"] == 1000
    assert train["network_def"]["_target_"] == "medsyn_monai.networks.nets.LightweightDiffusionUNet"
    assert infer["save_nifti"] is False and infer["save_png"] is True and infer["guidance_scale"] == 1.0
    assert infer["scheduler_type"] == "ddim" and infer["class_labels"] is None


def test_augmentation_is_dihedral(tmp_path, tiny_cells):
    """``augment`` switches random flips / 90-degree rotations of the cached crops on and off."""

    def dataset(augment):
        parser = ConfigParser()
        parser.read_config(TRAIN)
        parser.update({"dataset_dir": str(tiny_cells), "output_dir": str(tmp_path), "image_size": 16,
                       "augment": augment})  # fmt: skip
        return parser.get_parsed_content("train#dataset")

    plain = dataset(False)
    assert plain.transform is None and tuple(plain.images.shape[1:]) == (3, 16, 16)
    assert plain.images.min() >= -1 and plain.images.max() <= 1 and plain.images.min() == -1  # black background
    assert torch.equal(plain[0]["image"], plain.images[0])

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


def test_train_then_inference_rgb(tmp_path):
    demo = tmp_path / "demo_data"
    out = tmp_path / "run"
    # dataset_dir == demo_dir and absent: the synthetic cells demo is created first (200 per class)
    _train(out, demo, demo_dir=str(demo), sample_interval=1, batch_size=32)
    assert (demo / "README.md").is_file()
    assert len(list((demo / "parasitized").glob("*.png"))) == 200 and len(list((demo / "uninfected").glob("*.png")))
    models = out / "models"
    assert {"checkpoint.pt", "model.pt", "model_info.json"} <= {p.name for p in models.iterdir()}
    ckpt = torch.load(models / "checkpoint.pt", weights_only=False)
    assert {"network", "ema", "optimizer", "lr_scheduler", "trainer"} <= set(ckpt)
    assert ckpt["trainer"]["iteration"] == 2 * (320 // 32)  # 80 % train split of 400 crops, batch 32
    info = json.loads((models / "model_info.json").read_text())
    assert info["bundle"] == "cell_ddpm" and info["in_channels"] == 3 and info["image_size"] == 16
    assert info["class_names"] == ["parasitized", "uninfected"] and info["num_classes"] == 2
    assert info["channels"] == [8, 16] and info["prediction_type"] == "v_prediction"
    assert info["num_train_timesteps"] == 1000 and info["beta_schedule"] == "linear_beta"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    grids = sorted((out / "samples" / "training").iterdir())
    assert [p.name for p in grids] == ["epoch_0001.png", "epoch_0002.png"]
    grid = Image.open(grids[-1])
    assert grid.mode == "RGB" and grid.size == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2)  # 4 samples, columns = 2 classes
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and all(np.isfinite(float(r["mean_loss"])) for r in rows)

    _infer(out, num_samples=3, num_inference_steps=2)
    samples = out / "samples"
    pngs = sorted(samples.glob("sample_*.png"))
    assert [p.name for p in pngs] == [
        "sample_00000_parasitized.png",
        "sample_00001_uninfected.png",
        "sample_00002_parasitized.png",
    ]
    assert not list(samples.glob("*.nii.gz"))  # save_nifti is off by default
    first = Image.open(pngs[0])
    assert first.mode == "RGB" and first.size == (16, 16)
    pixels = np.asarray(first)
    assert pixels.dtype == np.uint8 and pixels.std() > 0
    # the PNG file has the same orientation as the first tile of grid.png (2 px padding)
    tile = np.asarray(Image.open(samples / "grid.png"))[2:18, 2:18]
    assert np.abs(tile.astype(int) - pixels.astype(int)).max() <= 1
    manifest = list(csv.DictReader(open(samples / "samples.csv")))
    assert [r["class_name"] for r in manifest] == ["parasitized", "uninfected", "parasitized"]

    # only one class, DDPM sampling with all its steps would be slow: a DDIM subset with another seed
    _infer(out, num_samples=2, num_inference_steps=3, class_labels=[1], seed=1, save_nifti=True)
    assert sorted(p.name for p in samples.glob("sample_*.nii.gz")) == [
        "sample_00000_uninfected.nii.gz",
        "sample_00001_uninfected.nii.gz",
    ]


def test_grey_variant(tmp_path, tiny_cells):
    """``in_channels 1``: RGB crops are converted to grey; grey 8- and 16-bit PNGs are accepted as they are."""
    data = tmp_path / "data"
    shutil.copytree(tiny_cells, data)
    rgb = np.asarray(Image.open(data / "parasitized" / "cell_0000.png"))
    Image.fromarray(rgb.mean(-1).astype(np.uint8)).save(data / "parasitized" / "grey8.png")
    Image.fromarray((rgb.mean(-1) * 257).astype(np.uint16)).save(data / "uninfected" / "grey16.png")
    assert Image.open(data / "uninfected" / "grey16.png").mode == "I;16"
    out = tmp_path / "run"
    _train(out, data, max_epochs=1, in_channels=1, sample_interval=1)
    info = json.loads((out / "models" / "model_info.json").read_text())
    assert info["in_channels"] == 1 and info["class_names"] == ["parasitized", "uninfected"]
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert state["stem.conv.weight"].shape[1] == 1 and state["out_conv.weight"].shape[0] == 1  # grey in, grey out
    assert Image.open(out / "samples" / "training" / "epoch_0001.png").mode == "L"
    _infer(out, num_samples=2, num_inference_steps=2)
    png = Image.open(out / "samples" / "sample_00000_parasitized.png")
    assert png.mode == "L" and png.size == (16, 16)


def test_nih_layout_and_unconditional(tmp_path):
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
    _train(out, root, max_epochs=1, val_fraction=0.0, test_fraction=0.0)
    info = json.loads((out / "models" / "model_info.json").read_text())
    assert info["class_names"] == ["Parasitized", "Uninfected"] and info["in_channels"] == 3
    assert torch.load(out / "models" / "checkpoint.pt", weights_only=False)["trainer"]["iteration"] == 10 // 8

    out2 = tmp_path / "run_uncond"
    _train(out2, root, max_epochs=1, val_fraction=0.0, test_fraction=0.0, conditional=False, augment=False)
    info = json.loads((out2 / "models" / "model_info.json").read_text())
    assert info["num_classes"] is None and info["class_names"] is None and info["augment"] is False
    _infer(out2, num_samples=2, num_inference_steps=2)
    assert sorted(p.name for p in (out2 / "samples").glob("*.png")) == [
        "grid.png",
        "sample_00000.png",
        "sample_00001.png",
    ]
