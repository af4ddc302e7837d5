"""benchmarks/_common.py: the stacked ``--config_file`` of bundle commands, their overrides, and the real data."""

from __future__ import annotations

import shlex
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.benchmarks._load import load_benchmark

common = load_benchmark("_common")


def test_config_files_stack_overlays_on_train():
    configs = common.REPO / "bundles" / "cxr_cfg" / "configs"
    assert common.config_files("cxr_cfg", "train") == [str(configs / "train.json")]
    assert common.config_files("cxr_cfg", "inference.json") == [str(configs / "inference.json")]
    assert common.config_files("cxr_cfg", "evaluate_pretraining") == [
        str(configs / "train.json"),
        str(configs / "evaluate_pretraining.json"),
    ]
    for path in common.config_files("derm_dreambooth", "train_fewshot"):
        assert Path(path).is_file(), path


def test_run_bundle_command_and_log(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, stdout, stderr, cwd):
        calls.append((cmd, cwd))
        stdout.write("done\n")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(common.subprocess, "run", fake_run)
    log = tmp_path / "study.log"
    seconds = common.run_bundle("histo_feature_aligned", "evaluate", log, output_dir=tmp_path / "run",
                                feature_alignment=False, stages=[4, 8], ckpt=None, lr=2e-4)  # fmt: skip
    assert seconds >= 0.0
    ((cmd, cwd),) = calls
    assert cmd[1:5] == ["-m", "monai.bundle", "run", "--config_file"] and cwd == common.REPO
    assert cmd[5] == repr(common.config_files("histo_feature_aligned", "evaluate"))  # the list python-fire reads
    assert cmd[6:] == ["--output_dir", str(tmp_path / "run"), "--feature_alignment", "False", "--stages", "[4, 8]",
                       "--ckpt", "None", "--lr", "0.0002"]  # fmt: skip
    lines = log.read_text().splitlines()
    assert shlex.split(lines[0]) == cmd and lines[1] == "done"  # the log's command line runs as it stands
    assert '--config_file "[' in lines[0]

    common.run_bundle("histo_feature_aligned", "train", log, cwd=tmp_path)
    assert calls[-1][0][5] == common.config_files("histo_feature_aligned", "train")[0] and calls[-1][1] == tmp_path


def test_run_bundle_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(common.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 3))
    with pytest.raises(common.BundleRunError, match="cxr_cfg/train_expert failed .exit 3.") as info:
        common.run_bundle("cxr_cfg", "train_expert", tmp_path / "log")
    assert info.value.returncode == 3 and info.value.seconds >= 0.0


def test_shared_data(tmp_path):
    assert common.shared_data(tmp_path) == tmp_path.resolve()
    with pytest.raises(SystemExit, match=r"real data not found at .*missing.npz \(given by --npz\)"):
        common.shared_data(tmp_path / "missing.npz", option="--npz")
    with pytest.raises(SystemExit, match="README.md"):
        common.shared_data(None, "no/such/file.npz")


def test_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out, log = common.output_folder(Path("runs/a/b"), "study.log")
    assert out == tmp_path / "runs" / "a" / "b" and out.is_dir() and out.is_absolute()
    assert log == out / "study.log" and not log.exists()
    (out / "kept.txt").write_text("x")
    assert common.output_folder(out) == (out, out / "commands.log")  # an existing folder: nothing removed
    assert (out / "kept.txt").read_text() == "x"


def test_mednist_unzips_once_and_subsets(tmp_path):
    archive = tmp_path / "mednist.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for cls in ("CTHead", "CXR", "MRBrain"):
            for i in range(2):
                z.writestr(f"{cls}/{i:08d}.jpg", b"jpeg")
    data = tmp_path / "data"
    full = common.mednist(data, archive=archive)
    assert sorted(p.name for p in full.iterdir()) == ["CTHead", "CXR", "MRBrain"]
    archive.unlink()  # unzipped once: the archive is not read again
    assert common.mednist(data, archive=archive) == full
    subset = common.mednist(data, ["MRBrain", "CXR"], archive)
    assert sorted(p.name for p in subset.iterdir()) == ["CXR", "MRBrain"] and len(list(subset.rglob("*.jpg"))) == 4
    assert common.mednist(data, ["CXR", "MRBrain"]) == subset
    assert not list(data.glob("*.partial"))
    with pytest.raises(SystemExit, match="no class"):
        common.mednist(data, ["CTAbd"])
    with pytest.raises(SystemExit, match="--mednist-zip"):
        common.mednist(tmp_path / "other", archive=archive)


def test_markdown_table():
    rows = [{"model": "a", "acc": 0.81234, "n": 3}, {"model": "b", "acc": None, "n": 4}]
    assert common.markdown_table(rows, ["model", "acc"], ".3f").splitlines() == [
        "| model | acc |", "|---|---|", "| a | 0.812 |", "| b | None |"
    ]  # fmt: skip
