"""Every bundle honours the config contract of configs/contract.json and ships the MONAI bundle files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

REPO = Path(__file__).resolve().parents[1]
CONTRACT = json.loads((REPO / "configs" / "contract.json").read_text())
BUNDLES = sorted(p for p in (REPO / "bundles").iterdir() if (p / "configs").is_dir())


def test_there_are_bundles():
    assert "ct_lightweight" in [b.name for b in BUNDLES]


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_bundle_files(bundle):
    for rel in ("configs/metadata.json", "configs/train.json", "configs/inference.json", "configs/logging.conf",
                "docs/README.md", "LICENSE"):  # fmt: skip
        assert (bundle / rel).is_file(), f"{bundle.name} lacks {rel}"


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
@pytest.mark.parametrize("kind", ["train", "inference", "train_expert", "evaluate"])
def test_contract_keys(bundle, kind):
    if kind in ("train_expert", "evaluate") and not (bundle / "configs" / f"{kind}.json").is_file():
        pytest.skip(f"{bundle.name} has no {kind}.json")
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / f"{kind}.json"))
    missing = [k for k in CONTRACT[kind] if k not in parser.config]
    assert not missing, f"{bundle.name}/{kind}.json lacks top-level keys {missing}"
    # outputs live under output_dir
    text = (bundle / "configs" / f"{kind}.json").read_text()
    subs = {"train": ("models", "samples", "tensorboard"), "inference": ("models", "samples"),
            "train_expert": ("models", "tensorboard", "eval"), "evaluate": ("models", "eval")}[kind]  # fmt: skip
    for sub in subs:
        assert f"'{sub}'" in text, f"{bundle.name}/{kind}.json does not write to output_dir/{sub}"
