"""The ct_lightweight bundle's real configs through monai.bundle, with tiny overrides: train.json and inference.json
alone, the train_expert / evaluate / ablation overlays stacked on train.json, and the documented command lines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from PIL import Image

from medsyn_monai.data import DataValidationError
from tests.bundles._bundle import REPO

BUNDLE = "ct_lightweight"
UNET = "medsyn_monai.networks.nets.LightweightDiffusionUNet"
SOFT_TISSUE_HU = (-160.0, 240.0)


def _cause(err: BaseException, kind: type[BaseException] = DataValidationError) -> BaseException | None:
    """The error of ``kind`` that monai.bundle wrapped ("Failed to evaluate/instantiate ...")."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, kind):
        cause = cause.__cause__ or cause.__context__
    return cause


def _bad_collection(root: Path, good: Path) -> Path:
    """A copy of ``good`` with one unreadable DICOM file; returns that file."""
    shutil.copytree(good, root)
    case = sorted((root / "normal").iterdir())[0]
    (case / "IM_fake.dcm").write_text("this is not a DICOM file")
    return case / "IM_fake.dcm"


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


@pytest.fixture(scope="module")
def demo_run(bundle, tmp_path_factory) -> Path:
    """2 epochs on the default data path: ``dataset_dir`` == ``demo_dir``, absent, so the demo is written first."""
    root = tmp_path_factory.mktemp("ct_demo_run")
    bundle.train(root / "run", root / "demo_data", demo_dir=str(root / "demo_data"), sample_interval=1)
    return root


@pytest.fixture(scope="module")
def expert_run(bundle, tiny_ct_demo, tmp_path_factory) -> Path:
    """A diffusion model (1 epoch) and its expert (train_expert.json overlay, 2 epochs) in one output_dir."""
    out = tmp_path_factory.mktemp("ct_expert_run") / "run"
    bundle.train(out, tiny_ct_demo, max_epochs=1)
    bundle.train(out, tiny_ct_demo, "train_expert", max_epochs=2, device="cpu")
    return out


def test_check_properties_and_metadata(bundle, tmp_path, tiny_ct_demo):
    workflow = bundle.workflow(tiny_ct_demo, tmp_path)
    assert bundle.missing_required(workflow) == []
    assert workflow.max_epochs == 100 and workflow.dataset_dir == str(tiny_ct_demo)
    assert Path(workflow.bundle_root).resolve() == bundle.root  # found from the repository root
    meta = bundle.metadata()
    assert set(meta["network_data_format"]) == {"inputs", "outputs"}
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 1


def test_optional_property_ids(bundle, tmp_path, tiny_ct_demo):
    assert bundle.workflow(tiny_ct_demo, tmp_path).check_properties() == []


def test_train_on_default_demo(bundle, demo_run):
    demo, out = demo_run / "demo_data", demo_run / "run"
    assert (demo / "README.md").is_file() and (demo / "normal").is_dir() and (demo / "lesion").is_dir()
    bundle.check_training_outputs(out, epochs=2)
    assert not [p for p in (out / "models").iterdir() if p.suffix not in (".pt", ".json")]  # no temporary files left
    info = bundle.model_info(out)
    assert info["class_names"] == ["lesion", "normal"] and info["num_classes"] == 2 and info["image_size"] == 16
    assert info["in_channels"] == 1 and info["ct_window"] == "soft_tissue" and info["augment"] is False
    assert info["intensity_range"] == list(SOFT_TISSUE_HU)
    net = info["network"]
    assert net["_target_"] == UNET and net["channels"] == [8, 16] and net["num_class_embeds"] == 2
    assert net["time_injection"] == "all" and net["skip_connections"] is True
    assert info["scheduler"] == {"num_train_timesteps": 1000, "schedule": "linear_beta",
                                 "prediction_type": "v_prediction"}  # fmt: skip
    assert sorted(p.name for p in (out / "samples" / "training").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]


def test_inference_png_and_nifti(bundle, demo_run, tmp_path):
    """Samples of the trained model: PNG at the trained size, NIfTI in HU of the soft-tissue window, a grid."""
    bundle.infer(tmp_path, ckpt_path=str(demo_run / "run" / "models" / "model.pt"), num_samples=3)
    samples = tmp_path / "samples"
    pngs = sorted(samples.glob("sample_*.png"))
    niis = sorted(samples.glob("sample_*.nii.gz"))
    assert [p.name for p in pngs] == ["sample_00000_lesion.png", "sample_00001_normal.png", "sample_00002_lesion.png"]
    assert [p.name.replace(".nii.gz", ".png") for p in niis] == [p.name for p in pngs]
    assert Image.open(pngs[0]).size == (16, 16)
    vol = nib.load(niis[0]).get_fdata()
    lo, hi = SOFT_TISSUE_HU
    assert vol.shape == (16, 16) and vol.min() >= lo - 1e-3 and vol.max() <= hi + 1e-3
    assert vol.max() - vol.min() > 1.0  # an image, not a constant
    assert (samples / "grid.png").is_file()


def test_device_as_plain_string(bundle, tmp_path, tiny_ct_demo):
    """``--device cpu`` arrives as the plain string 'cpu' (not an expression): train and inference take it."""
    parser = bundle.parser("train")
    parser.update({"device": "cpu"})
    assert parser.get_parsed_content("amp") is False  # derived from the string, no torch.device expected
    out = tmp_path / "run"
    bundle.train(out, tiny_ct_demo, max_epochs=1, device="cpu")
    assert len(bundle.csv_rows(out / "train_log.csv")) == 1
    bundle.infer(out, num_samples=2, device="cpu", save_nifti="false")  # a command-line boolean, too
    samples = out / "samples"
    assert len(list(samples.glob("sample_*.png"))) == 2 and not list(samples.glob("*.nii.gz"))


def test_resume_extends_training(bundle, tmp_path, tiny_ct_demo):
    out = tmp_path / "run"
    bundle.train(out, tiny_ct_demo, max_epochs=1)
    first = torch.load(out / "models" / "checkpoint.pt", weights_only=True)["trainer"]["iteration"]
    assert first > 0
    bundle.train(out, tiny_ct_demo, max_epochs=3)  # a new run: resumes at epoch 1 and trains epochs 2-3
    assert [int(r["epoch"]) for r in bundle.csv_rows(out / "train_log.csv")] == [1, 2, 3]
    assert torch.load(out / "models" / "checkpoint.pt", weights_only=True)["trainer"]["iteration"] == 3 * first


def test_unconditional_option(bundle, tmp_path, tiny_ct_demo):
    out = tmp_path / "run"
    bundle.train(out, tiny_ct_demo, max_epochs=1, conditional="false", time_injection="first", skip_connections=False)
    info = bundle.model_info(out)
    assert info["num_classes"] is None and info["class_names"] is None
    net = info["network"]
    assert net["num_class_embeds"] is None and net["time_injection"] == "first" and net["skip_connections"] is False
    bundle.infer(out, num_samples=2, scheduler_type="ddim")
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["grid.png", "sample_00000.png",
                                                                       "sample_00001.png"]  # fmt: skip


def test_bad_input_stops_before_training(bundle, tmp_path, tiny_ct_demo):
    bad_file = _bad_collection(tmp_path / "data", tiny_ct_demo)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(Exception) as err:  # monai.bundle wraps it in "Failed to evaluate/instantiate ..."
        bundle.train(out, tmp_path / "data")
    cause = _cause(err.value)
    assert isinstance(cause, DataValidationError)
    assert str(bad_file) in str(cause) and "skip_bad_files" in str(cause)
    assert (out / "notes.txt").read_text() == "keep me"
    assert not (out / "models" / "checkpoint.pt").exists()  # stopped before training

    bundle.train(out, tmp_path / "data", max_epochs=1, skip_bad_files="yes")
    report = bundle.csv_rows(out / "skipped_files.csv")
    # paths relative to dataset_dir: the report holds no absolute input path
    assert [r["path"] for r in report] == [bad_file.relative_to(tmp_path / "data").as_posix()] and report[0]["reason"]
    assert (out / "models" / "model.pt").is_file() and (out / "notes.txt").read_text() == "keep me"


def _tiny_args(dataset_dir: Path, output_dir: Path | str) -> list[str]:
    return ["--dataset_dir", str(dataset_dir), "--output_dir", str(output_dir), "--max_epochs", "1",
            "--image_size", "16", "--channels", "[8,16]", "--batch_size", "8", "--num_inference_steps", "2",
            "--num_grid_samples", "2", "--cpu_bf16", "false"]  # fmt: skip


def test_command_line(bundle, tmp_path, tiny_ct_demo):
    """The documented command line (python -m monai.bundle run ...): booleans and the device as plain strings, a
    typo in a boolean, and the error on bad input."""
    out = tmp_path / "run"
    cmd = ["--config_file", bundle.config("train"), *_tiny_args(tiny_ct_demo, out), "--skip_connections", "false",
           "--device", "cpu"]  # fmt: skip
    res = bundle.command(*cmd)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "models" / "model.pt").is_file()
    # lowercase "false" arrives as a string; the network turns it into a real bool (JSON false), not a truthy string
    assert bundle.model_info(out)["network"]["skip_connections"] is False

    typo = list(cmd)
    typo[typo.index("--skip_connections") + 1], typo[typo.index("--output_dir") + 1] = "flase", str(tmp_path / "typo")
    res = bundle.command(*typo)
    assert res.returncode != 0
    assert "ValueError: skip_connections: expected a boolean" in res.stderr and "got 'flase'" in res.stderr
    assert not (tmp_path / "typo" / "models" / "model_info.json").exists()

    bad_file = _bad_collection(tmp_path / "bad", tiny_ct_demo)
    cmd[cmd.index("--dataset_dir") + 1] = str(tmp_path / "bad")
    res = bundle.command(*cmd)
    assert res.returncode != 0
    assert f"{bad_file}: " in res.stdout + res.stderr


def test_run_from_inside_the_bundle_folder(bundle, tmp_path, tiny_ct_demo, monkeypatch):
    """The model-zoo habit: cwd = bundles/ct_lightweight, ``--config_file configs/train.json``; outputs go to the
    absolute --output_dir and nothing is written into the bundle."""

    def listing() -> list[Path]:
        return sorted([*bundle.root.iterdir(), *bundle.configs.iterdir()])

    before = listing()
    out = tmp_path / "run"
    res = bundle.command("--config_file", "configs/train.json", *_tiny_args(tiny_ct_demo, out), "--device", "cpu",
                         cwd=bundle.root)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "configs/logging.conf" in res.stdout + res.stderr  # the bundle's own logging config was found
    assert (out / "models" / "model.pt").is_file() and len(bundle.csv_rows(out / "train_log.csv")) == 1

    monkeypatch.chdir(bundle.root)  # inference from there too (in-process, the same cwd)
    parser = ConfigParser()
    parser.read_config("configs/inference.json")
    assert parser.get_parsed_content("bundle_root") == "."
    bundle.run("inference", output_dir=str(out), num_samples=2, num_inference_steps=2, device="cpu")
    assert len(list((out / "samples").glob("sample_*.nii.gz"))) == 2
    assert listing() == before


def test_run_from_anywhere_with_bundle_root(bundle, tmp_path, tiny_ct_demo, monkeypatch):
    """From an unrelated folder: the default bundle_root still finds the bundle (the installed source tree), an
    explicit ``bundle_root`` is taken, and a relative output_dir is under that folder."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert Path(bundle.parser("train").get_parsed_content("bundle_root")).resolve() == bundle.root
    bundle.train(Path("run"), tiny_ct_demo, max_epochs=1, bundle_root=str(bundle.root))
    assert [p.name for p in cwd.iterdir()] == ["run"] and (cwd / "run" / "models" / "model.pt").is_file()
    bundle.infer(Path("run"), num_samples=1, bundle_root=str(bundle.root))
    assert len(list((cwd / "run" / "samples").glob("sample_*.png"))) == 1


def test_real_ct_compressed_series(bundle, tmp_path, shared_data):
    """Real CT pixel data (../shared/data/ct) stored as compressed DICOM series trains and samples."""
    script = REPO / "benchmarks" / "make_real_ct_series.py"
    res = subprocess.run([sys.executable, str(script), str(tmp_path / "real")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "run"
    bundle.train(out, tmp_path / "real", max_epochs=1)
    info = bundle.model_info(out)
    assert info["num_classes"] is None and info["network"]["num_class_embeds"] is None  # unlabelled: unconditional
    rows = bundle.csv_rows(out / "train_log.csv")
    assert len(rows) == 1 and np.isfinite(float(rows[0]["mean_loss"]))
    bundle.infer(out, num_samples=2)
    assert len(list((out / "samples").glob("sample_*.nii.gz"))) == 2


def test_train_expert_overlay(bundle, expert_run):
    """train.json + train_expert.json: a ResNet-18 expert on the same data path; best checkpoint, val/test reports,
    log and TensorBoard, beside (not over) the diffusion model of the same output_dir."""
    expert = expert_run / "models" / "expert"
    assert {"best_model.pt", "best_metric.json", "model_info.json"} <= {p.name for p in expert.iterdir()}
    info = bundle.model_info(expert_run, "expert")
    assert info["class_names"] == ["lesion", "normal"] and info["kind"] == "expert" and info["num_classes"] == 2
    assert info["bundle"] == "ct_lightweight" and info["ct_window"] == "soft_tissue" and info["image_size"] == 16
    net = info["network"]
    assert net["_target_"] == "medsyn_monai.networks.nets.ExpertClassifier" and net["name"] == "resnet18"
    assert net["in_channels"] == 1 and net["num_classes"] == 2 and net["image_size"] == [16, 16]
    state = torch.load(expert / "best_model.pt", weights_only=True)
    assert any(v.ndim == 4 and v.shape[1] == 1 for v in state.values())  # a one-channel first convolution
    reports = expert_run / "eval" / "expert"
    report = json.loads((reports / "test_metrics.json").read_text())
    assert 0.0 <= report["accuracy"] <= 1.0 and len(report["confusion_matrix"]) == 2
    assert sum(map(sum, report["confusion_matrix"])) == report["num_samples"] > 0
    for name in ("val_metrics.json", "val_confusion_matrix.png", "test_confusion_matrix.png"):
        assert (reports / name).is_file(), name
    assert [int(r["epoch"]) for r in bundle.csv_rows(expert_run / "expert_train_log.csv")] == [1, 2]
    assert list((expert_run / "tensorboard" / "expert").glob("events.out.tfevents.*"))
    assert bundle.model_info(expert_run)["network"]["_target_"] == UNET


def test_evaluate_overlay(bundle, expert_run, tiny_ct_demo, tmp_path):
    """train.json + evaluate.json: metrics.json, report.md and figures of the model and its expert."""
    ev = tmp_path / "eval"
    bundle.run("evaluate", dataset_dir=str(tiny_ct_demo), output_dir=str(expert_run), eval_dir=str(ev),
               num_samples=8, num_seeds=2, samples_per_class=2, num_inference_steps=2, device="cpu")  # fmt: skip
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


def test_ablation_overlay(bundle, expert_run, tiny_ct_demo, tmp_path):
    """train.json + ablation.json: trains each network variant itself and tabulates FID/KID/SSIM; the expert (of
    train_expert.json in the same output_dir) comes first."""
    abl = tmp_path / "ablation"
    variants = {"all": {"network": {"time_injection": "all"}}, "no_skip": {"network": {"skip_connections": "false"}}}
    kwargs = {"seeds": [0], "max_epochs": 1, "num_samples": 8, "variants": variants, "device": "cpu"}
    with pytest.raises(Exception) as err:  # no expert yet: stops before training, saying what to run first
        bundle.train(abl, tiny_ct_demo, "ablation", **kwargs)
    missing = _cause(err.value, FileNotFoundError)
    assert str(abl / "models" / "expert" / "best_model.pt") in str(missing) and "train_expert.json" in str(missing)
    assert not (abl / "all").exists()
    shutil.copytree(expert_run / "models" / "expert", abl / "models" / "expert")
    bundle.train(abl, tiny_ct_demo, "ablation", **kwargs)
    table = json.loads((abl / "ablation.json").read_text())
    assert set(table["variants"]) == {"all", "no_skip"} and table["seeds"] == [0] and table["num_samples"] == 8
    for name in variants:
        runs = table["variants"][name]["runs"]
        assert [r["seed"] for r in runs] == [0] and all(np.isfinite(r["fid"]) for r in runs)
        assert (abl / name / "seed_0" / "models" / "model.pt").is_file()
    info = bundle.model_info(abl / "no_skip" / "seed_0")
    assert info["network"]["skip_connections"] is False and info["network"]["channels"] == [8, 16]
    assert info["ablation_variant"] == "no_skip" and info["image_size"] == 16 and info["num_classes"] == 2
    assert bundle.model_info(abl / "all" / "seed_0")["network"]["skip_connections"] is True
    assert "| no_skip |" in (abl / "ablation.md").read_text()


def test_expert_train_evaluate_chain_on_exported_pngs(bundle, tmp_path):
    """--dataset_dir with class folders of display PNGs: train_expert -> train -> evaluate with ct_window display."""
    data, out = _exported_ct_pngs(tmp_path / "exports"), tmp_path / "run"
    with pytest.raises(Exception) as err:  # the HU default refuses PNGs, naming the file and the fix
        bundle.train(out, data, max_epochs=1)
    assert re.search(r"abdomen_\d{3}\.png: ValueError: .*Hounsfield.*--ct_window display",
                     str(_cause(err.value)))  # fmt: skip
    bundle.train(out, data, "train_expert", ct_window="display", max_epochs=1)
    assert bundle.model_info(out, "expert")["ct_window"] == "display"
    bundle.train(out, data, max_epochs=1, ct_window="display")
    info = bundle.model_info(out)
    assert info["ct_window"] == "display" and info["class_names"] == ["abdomen", "head"]
    assert info["intensity_range"] == [0.0, 255.0]
    bundle.run("evaluate", dataset_dir=str(data), output_dir=str(out), num_samples=8, num_seeds=1,
               samples_per_class=2, num_inference_steps=2)  # fmt: skip
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["num_synthetic"] == 8 and 0.0 <= metrics["expert_accuracy_real"] <= 1.0
    assert -1.0 <= metrics["ssim_intra_real"] <= 1.0 and (out / "eval" / "report.md").is_file()
    bundle.infer(out, num_samples=2)
    nii = sorted((out / "samples").glob("*.nii.gz"))
    assert len(nii) == 2
    values = np.asarray(nib.load(nii[0]).dataobj)
    assert values.min() >= 0.0 and values.max() <= 255.0 and values.max() > 1.0  # display grey levels, not HU
