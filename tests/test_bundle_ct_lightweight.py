"""The ct_lightweight bundle's real configs through monai.bundle, with tiny overrides."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow
from monai.bundle import run as bundle_run
from PIL import Image

from medsyn_monai.data import DataValidationError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "ct_lightweight" / "configs"
TRAIN, INFER = str(CONFIGS / "train.json"), str(CONFIGS / "inference.json")
TINY = {"image_size": 16, "channels": [8, 16], "batch_size": 8, "num_inference_steps": 2, "num_grid_samples": 4,
        "warmup_steps": 2}  # fmt: skip


def _train(output_dir, dataset_dir, **overrides):
    kwargs = {**TINY, "dataset_dir": str(dataset_dir), "output_dir": str(output_dir), "max_epochs": 2, **overrides}
    bundle_run(config_file=TRAIN, logging_file=str(CONFIGS / "logging.conf"), **kwargs)


def test_check_properties_and_metadata(tmp_path, tiny_ct_demo):
    overrides = {k: v for k, v in TINY.items() if k != "warmup_steps"}
    workflow = ConfigWorkflow(config_file=TRAIN, workflow_type="train", meta_file=str(CONFIGS / "metadata.json"),
                              logging_file=str(CONFIGS / "logging.conf"), dataset_dir=str(tiny_ct_demo),
                              output_dir=str(tmp_path), **overrides)  # fmt: skip
    workflow.initialize()
    assert workflow.check_properties() == []  # nothing missing
    assert workflow.max_epochs == 100 and workflow.dataset_dir == str(tiny_ct_demo)
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    for key in ("version", "changelog", "monai_version", "pytorch_version", "numpy_version",
                "required_packages_version", "name", "task", "description", "authors", "data_source",
                "network_data_format", "intended_use", "references"):  # fmt: skip
        assert meta[key], key
    assert meta["version"] in meta["changelog"]
    assert set(meta["network_data_format"]) == {"inputs", "outputs"}


def test_train_then_inference(tmp_path):
    demo = tmp_path / "demo_data"
    out = tmp_path / "run"
    # dataset_dir == demo_dir and absent: the demo collection is created first
    _train(out, demo, demo_dir=str(demo), sample_interval=1)
    assert (demo / "README.md").is_file() and (demo / "normal").is_dir() and (demo / "lesion").is_dir()
    models = out / "models"
    assert {"checkpoint.pt", "model.pt", "model_info.json"} <= {p.name for p in models.iterdir()}
    assert not [p for p in models.iterdir() if p.suffix not in (".pt", ".json")]  # no temporary files left
    ckpt = torch.load(models / "checkpoint.pt", weights_only=False)
    assert {"network", "ema", "optimizer", "lr_scheduler", "trainer"} <= set(ckpt)
    info = json.loads((models / "model_info.json").read_text())
    assert info["class_names"] == ["lesion", "normal"] and info["num_classes"] == 2 and info["image_size"] == 16
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (out / "samples" / "training").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and all(np.isfinite(float(r["mean_loss"])) for r in rows)

    bundle_run(config_file=INFER, output_dir=str(out), num_samples=3, num_inference_steps=2,
               logging_file=str(CONFIGS / "logging.conf"))  # fmt: skip
    samples = out / "samples"
    pngs = sorted(samples.glob("sample_*.png"))
    niis = sorted(samples.glob("sample_*.nii.gz"))
    assert [p.name for p in pngs] == ["sample_00000_lesion.png", "sample_00001_normal.png", "sample_00002_lesion.png"]
    assert len(niis) == 3
    assert Image.open(pngs[0]).size == (16, 16)
    vol = nib.load(niis[0]).get_fdata()
    assert vol.shape == (16, 16) and vol.min() >= -160 - 1e-3 and vol.max() <= 240 + 1e-3  # soft-tissue window, HU
    assert (samples / "grid.png").is_file()


def test_resume_extends_training(tmp_path, tiny_ct_demo):
    out = tmp_path / "run"
    _train(out, tiny_ct_demo, max_epochs=1)
    first = torch.load(out / "models" / "checkpoint.pt", weights_only=False)["trainer"]["iteration"]
    _train(out, tiny_ct_demo, max_epochs=3)  # a new process: resumes at epoch 1 and trains epochs 2-3
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert torch.load(out / "models" / "checkpoint.pt", weights_only=False)["trainer"]["iteration"] == 3 * first


def test_unconditional_option(tmp_path, tiny_ct_demo):
    out = tmp_path / "run"
    _train(out, tiny_ct_demo, max_epochs=1, conditional=False, time_injection="first", skip_connections=False)
    info = json.loads((out / "models" / "model_info.json").read_text())
    assert info["num_classes"] is None and info["time_injection"] == "first" and info["skip_connections"] is False
    bundle_run(config_file=INFER, output_dir=str(out), num_samples=2, num_inference_steps=2, scheduler_type="ddim",
               logging_file=str(CONFIGS / "logging.conf"))  # fmt: skip
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == [
        "grid.png",
        "sample_00000.png",
        "sample_00001.png",
    ]


def _bad_collection(root: Path, good: Path) -> Path:
    import shutil

    shutil.copytree(good, root)
    case = next((root / "normal").iterdir())
    (case / "IM_fake.dcm").write_text("this is not a DICOM file")
    return case / "IM_fake.dcm"


def test_bad_input_stops_before_training(tmp_path, tiny_ct_demo):
    bad_file = _bad_collection(tmp_path / "data", tiny_ct_demo)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(Exception) as err:  # monai.bundle wraps it in "Failed to evaluate/instantiate ..."
        _train(out, tmp_path / "data")
    cause = err.value
    while cause is not None and not isinstance(cause, DataValidationError):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, DataValidationError)
    assert str(bad_file) in str(cause) and "skip_bad_files" in str(cause)
    assert (out / "notes.txt").read_text() == "keep me"
    assert not (out / "models" / "checkpoint.pt").exists()  # stopped before training

    _train(out, tmp_path / "data", max_epochs=1, skip_bad_files=True)
    report = list(csv.DictReader(open(out / "skipped_files.csv")))
    assert [r["path"] for r in report] == [str(bad_file)] and report[0]["reason"]
    assert (out / "models" / "model.pt").is_file() and (out / "notes.txt").read_text() == "keep me"


def test_command_line(tmp_path, tiny_ct_demo):
    """The documented command line (python -m monai.bundle run ...) with overrides, and its error on bad input."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", TRAIN, "--dataset_dir", str(tiny_ct_demo),
           "--output_dir", str(out), "--max_epochs", "1", "--image_size", "16", "--channels", "[8,16]",
           "--num_inference_steps", "2", "--num_grid_samples", "2", "--cpu_bf16", "false",
           "--skip_connections", "false"]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "models" / "model.pt").is_file()
    # lowercase "false" arrives as a string; the config turns it into a real bool (JSON false), not a truthy string
    assert json.loads((out / "models" / "model_info.json").read_text())["skip_connections"] is False

    typo = list(cmd)
    typo[typo.index("--skip_connections") + 1], typo[typo.index("--output_dir") + 1] = "flase", str(tmp_path / "typo")
    res = subprocess.run(typo, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert res.returncode != 0
    assert "ValueError: skip_connections: expected a boolean" in res.stderr and "got 'flase'" in res.stderr
    assert not (tmp_path / "typo" / "models" / "model_info.json").exists()

    bad = tmp_path / "bad"
    bad_file = _bad_collection(bad, tiny_ct_demo)
    cmd[cmd.index("--dataset_dir") + 1] = str(bad)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert res.returncode != 0
    assert f"{bad_file}: " in res.stdout + res.stderr


def test_real_ct_compressed_series(tmp_path, shared_data):
    """Real CT pixel data (../shared/data/ct) stored as compressed DICOM series trains and samples."""
    script = REPO / "benchmarks" / "make_real_ct_series.py"
    res = subprocess.run([sys.executable, str(script), str(tmp_path / "real")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "run"
    _train(out, tmp_path / "real", max_epochs=1)
    info = json.loads((out / "models" / "model_info.json").read_text())
    assert info["num_classes"] is None  # series folders: unlabelled -> unconditional
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert len(rows) == 1 and np.isfinite(float(rows[0]["mean_loss"]))
    bundle_run(config_file=INFER, output_dir=str(out), num_samples=2, num_inference_steps=2,
               logging_file=str(CONFIGS / "logging.conf"))  # fmt: skip
    assert len(list((out / "samples").glob("sample_*.nii.gz"))) == 2


def test_train_expert(tmp_path, tiny_ct_demo):
    """train_expert.json: a ResNet-18 expert on the same data path; best checkpoint and val/test reports."""
    out = tmp_path / "run"
    bundle_run(config_file=str(CONFIGS / "train_expert.json"), dataset_dir=str(tiny_ct_demo), output_dir=str(out),
               max_epochs=2, image_size=16, batch_size=8, logging_file=str(CONFIGS / "logging.conf"))  # fmt: skip
    expert = out / "models" / "expert"
    assert {"best_model.pt", "best_metric.json", "model_info.json"} <= {p.name for p in expert.iterdir()}
    info = json.loads((expert / "model_info.json").read_text())
    assert info["class_names"] == ["lesion", "normal"] and info["name"] == "resnet18"
    report = json.loads((out / "eval" / "expert" / "test_metrics.json").read_text())
    assert 0.0 <= report["accuracy"] <= 1.0 and len(report["confusion_matrix"]) == 2
    assert sum(map(sum, report["confusion_matrix"])) == report["num_samples"] > 0
    assert (out / "eval" / "expert" / "val_confusion_matrix.png").is_file()
    assert len(list(csv.DictReader(open(out / "expert_train_log.csv")))) == 2


def test_evaluate_and_ablation(tmp_path, tiny_ct_demo):
    """evaluate.json writes metrics.json/report.md/figures; ablation.json trains variants x seeds and tabulates."""
    out = tmp_path / "run"
    _train(out, tiny_ct_demo, max_epochs=1)
    bundle_run(config_file=str(CONFIGS / "train_expert.json"), dataset_dir=str(tiny_ct_demo), output_dir=str(out),
               max_epochs=1, image_size=16, batch_size=8, logging_file=str(CONFIGS / "logging.conf"))  # fmt: skip
    bundle_run(config_file=str(CONFIGS / "evaluate.json"), dataset_dir=str(tiny_ct_demo), output_dir=str(out),
               num_samples=8, num_seeds=2, samples_per_class=2, num_inference_steps=2,
               logging_file=str(CONFIGS / "logging.conf"))  # fmt: skip
    ev = out / "eval"
    metrics = json.loads((ev / "metrics.json").read_text())
    for key in ("fid", "kid_mean", "kid_std", "precision", "recall", "ssim_intra_synthetic", "ssim_intra_real",
                "chi2_pvalue", "kl_divergence", "expert_accuracy_real", "generation_accuracy_mean"):  # fmt: skip
        assert key in metrics, key
    assert metrics["num_synthetic"] == 8 and 0.0 <= metrics["generation_accuracy_mean"] <= 1.0
    assert metrics["fid"] is None or metrics["fid"] >= 0.0
    assert "generation_accuracy_mean" in (ev / "report.md").read_text()
    for png in ("real_grid.png", "synthetic_grid.png", "intensity_histogram.png", "generation_confusion_synthetic.png"):
        assert (ev / png).is_file(), png
    ga = json.loads((ev / "generation_accuracy.json").read_text())
    assert len(ga["generation_accuracy_per_seed"]) == 2

    abl = tmp_path / "ablation"
    variants = {"all": {"time_injection": "all"}, "no_skip": {"skip_connections": False}}
    bundle_run(config_file=str(CONFIGS / "ablation.json"), dataset_dir=str(tiny_ct_demo), output_dir=str(abl),
               seeds=[0, 1], max_epochs=1, image_size=16, batch_size=8, num_samples=8, num_inference_steps=2,
               expert_epochs=1, variants=variants, **{"common_overrides#channels": [8, 16]},
               logging_file=str(CONFIGS / "logging.conf"))  # fmt: skip
    table = json.loads((abl / "ablation.json").read_text())
    assert set(table["variants"]) == {"all", "no_skip"} and table["seeds"] == [0, 1]
    for name in variants:
        runs = table["variants"][name]["runs"]
        assert [r["seed"] for r in runs] == [0, 1] and all(np.isfinite(r["fid"]) for r in runs)
        assert (abl / name / "seed_1" / "models" / "model.pt").is_file()
    info = json.loads((abl / "no_skip" / "seed_0" / "models" / "model_info.json").read_text())
    assert info["skip_connections"] is False and info["channels"] == [8, 16]
    assert "| no_skip |" in (abl / "ablation.md").read_text()


def _exported_ct_pngs(root: Path, per_class: int = 30, size: int = 32) -> Path:
    """Class folders of 8-bit PNG CT exports (already windowed grey levels), as users get them from a PACS viewer."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for c, name in enumerate(["abdomen", "head"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            ry = (0.3 + 0.15 * c) * size
            body = ((xx - size / 2) ** 2 / (0.45 * size) ** 2 + (yy - size / 2) ** 2 / ry**2) < 1
            img = np.where(body, 90 + 60 * c, 5) + rng.normal(0, 8, (size, size))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / name / f"{name}_{i:03d}.png")
    return root


def test_expert_train_evaluate_chain_on_exported_pngs(tmp_path):
    """--dataset_dir with class folders of display PNGs: train_expert -> train -> evaluate with ct_window=display."""
    data, out = _exported_ct_pngs(tmp_path / "exports"), tmp_path / "run"
    log = str(CONFIGS / "logging.conf")
    with pytest.raises(Exception) as err:  # the HU default refuses PNGs, naming the file and the fix
        _train(out, data, max_epochs=1)
    cause = err.value
    while cause is not None and not isinstance(cause, DataValidationError):
        cause = cause.__cause__ or cause.__context__
    assert re.search(r"abdomen_\d{3}\.png: ValueError: .*Hounsfield.*--ct_window display", str(cause))
    bundle_run(config_file=str(CONFIGS / "train_expert.json"), dataset_dir=str(data), output_dir=str(out),
               ct_window="display", max_epochs=1, image_size=16, batch_size=8, logging_file=log)  # fmt: skip
    _train(out, data, max_epochs=1, ct_window="display")
    info = json.loads((out / "models" / "model_info.json").read_text())
    assert info["ct_window"] == "display" and info["class_names"] == ["abdomen", "head"]
    bundle_run(config_file=str(CONFIGS / "evaluate.json"), dataset_dir=str(data), output_dir=str(out), num_samples=8,
               num_seeds=1, samples_per_class=2, num_inference_steps=2, logging_file=log)  # fmt: skip
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["num_synthetic"] == 8 and 0.0 <= metrics["expert_accuracy_real"] <= 1.0
    assert -1.0 <= metrics["ssim_intra_real"] <= 1.0 and (out / "eval" / "report.md").is_file()
    bundle_run(config_file=INFER, output_dir=str(out), num_samples=2, num_inference_steps=2, logging_file=log)
    nii = sorted((out / "samples").glob("*.nii.gz"))
    assert len(nii) == 2
    values = np.asarray(nib.load(nii[0]).dataobj)
    assert values.min() >= 0.0 and values.max() <= 255.0  # display grey levels, not HU
