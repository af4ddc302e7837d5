"""Every ``python -m monai.bundle run`` command of the documentation runs as written, with tiny overrides.

The commands of each bundle's ``docs/README.md`` (and those of the main README and ``docs/README.md``) run in document
order in a fresh folder that holds a link to ``bundles/`` — as on a user's checkout — through the same python-fire
parsing as the command line, so values are passed exactly as a shell passes them. Only the sizes change: each command
gets the tiny settings below (replacing a value the command gives), and paths of user data (``/data/...``) point to a
tiny data set of the bundle's kind.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import fire
import numpy as np
import pytest
from monai.bundle.scripts import run as bundle_run

from medsyn_monai.apps.demo import create_demo
from tests.bundles._bundle import REPO, Bundle

BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs").is_dir())
TINY = {
    "max_epochs": "1", "image_size": "16", "channels": "[8,16]", "batch_size": "8", "num_head_channels": "8",
    "num_inference_steps": "2", "prior_inference_steps": "2", "num_grid_samples": "4", "num_samples": "8",
    "num_seeds": "1", "samples_per_class": "2", "num_samples_per_class": "2", "sweep_samples_per_class": "2",
    "num_class_images": "2",
    "pretrain_epochs": "1", "finetune_epochs": "1", "real_epochs": "1", "seeds": "[0]", "sampling_steps": "[1,2]",
    "mix_ratios": "[0.1]", "real_fractions": "[0.5]", "augment_options": "[false]", "class_weighted_options": "[true]",
    "device": "cpu", "cpu_bf16": "false", "max_instance_images": "2", "expert_input_size": "32",
    "attention_levels": "[false,false]", "norm_num_groups": "8",  # for the full-size recipes
}  # fmt: skip
DEMO_SIZES = {"ct": {"num_cases": 8, "num_slices": 4, "size": 64}, "cells": {"num_per_class": 30, "size": 32},
              "cxr": {"num_per_class": 30, "size": 32}, "histo": {"num_per_class": 10, "size": 32},
              "derm": {"num_per_class": 30, "num_instance": 3, "size": 32}}  # fmt: skip
KINDS = {"ct_lightweight": "ct", "cell_ddpm": "cells", "cxr_cfg": "cxr", "histo_feature_aligned": "histo",
         "derm_dreambooth": "derm"}  # fmt: skip


def commands(doc: Path, bundle: str) -> list[str]:
    """The ``monai.bundle run`` commands of ``bundle`` in the bash blocks of ``doc``, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("python -m monai.bundle run") and f"bundles/{bundle}/" in line]


def _data(tmp: Path, bundle: str) -> dict[str, str]:
    """Tiny stand-ins for the user data the docs point at (``/data/...``)."""
    kind = KINDS[bundle]
    root = create_demo(kind, tmp / "user_data" / kind, **DEMO_SIZES[kind])
    npz = tmp / "user_data" / "pneumoniamnist.npz"
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1)
    np.savez(npz, **arrays)
    images = root / "instance" if kind == "derm" else next(p for p in sorted(root.iterdir()) if p.is_dir())
    data = {"root": str(root), "npz": str(npz), "instances": str(images)}
    if kind == "derm":  # the docs' example is HAM10000 sorted by diagnosis: the demo's classes as 'mel' and 'nv'
        ham = tmp / "user_data" / "ham10000_by_class"
        shutil.copytree(root / "lesions" / "melanoma", ham / "mel")
        shutil.copytree(root / "lesions" / "nevus", ham / "nv")
        data["root"] = str(ham)
    return data


def _arguments(command: str, data: dict[str, str]) -> list[str]:
    args = shlex.split(command, comments=True)[3:]  # after "python -m monai.bundle"
    keys = [a[2:] for a in args if a.startswith("--")]
    out = []
    for i, a in enumerate(args):
        if i and args[i - 1].startswith("--") and a.startswith("/data/"):
            name = a.rstrip("/").rsplit("/", 1)[-1]
            a = data["npz"] if a.endswith(".npz") else data["instances"] if name.startswith("rare") else data["root"]
        if i and args[i - 1][2:] in TINY:
            a = TINY[args[i - 1][2:]]
        out.append(a)
    for key, value in TINY.items():
        if key not in keys:
            out += [f"--{key}", value]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_readme_commands_run(bundle, tmp_path, monkeypatch):
    docs = [Bundle(bundle).root / "docs" / "README.md", REPO / "README.md", REPO / "docs" / "README.md"]
    todo = [c for doc in docs for c in commands(doc, bundle)]
    assert todo, f"{bundle}'s docs show no command"
    data = _data(tmp_path, bundle)
    (tmp_path / "bundles").symlink_to(REPO / "bundles", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    for command in todo:
        try:
            fire.Fire({"run": bundle_run}, command=_arguments(command, data), name="monai.bundle")
        except Exception as e:
            raise AssertionError(f"the documented command failed: {command}") from e
    assert (tmp_path / "runs").is_dir() and not (REPO / "runs" / bundle / "tiny").exists()


def test_commands_are_found_and_user_paths_replaced(tmp_path):
    found = {b: commands(Bundle(b).root / "docs" / "README.md", b) for b in BUNDLES}
    assert all(found.values()), {b: len(c) for b, c in found.items()}
    args = _arguments(
        "python -m monai.bundle run --config_file bundles/ct_lightweight/configs/train.json --dataset_dir "
        "/data/my_dicoms --max_epochs 5 --augment false",
        {"root": "/tmp/x", "npz": "/tmp/x.npz"},
    )
    assert args[:6] == ["run", "--config_file", "bundles/ct_lightweight/configs/train.json", "--dataset_dir", "/tmp/x",
                        "--max_epochs"]  # fmt: skip
    assert args[6] == "1" and args[7:9] == ["--augment", "false"] and "--image_size" in args
    assert os.path.basename(__file__) == "test_readme_commands.py"
