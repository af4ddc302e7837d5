"""Every bundle honours the config contract of configs/contract.json and ships the MONAI bundle files."""

from __future__ import annotations

import json
import re

import pytest

from medsyn_monai.networks.schedulers import DEFAULT_NUM_INFERENCE_STEPS, DEFAULT_SCHEDULER_TYPE, sampling_scheduler
from tests.bundles._bundle import REPO, Bundle

CONTRACT = json.loads((REPO / "configs" / "contract.json").read_text())
BUNDLES = [Bundle(p.name) for p in sorted((REPO / "bundles").iterdir()) if (p / "configs").is_dir()]
OVERLAYS = [(b, p.stem) for b in BUNDLES for p in sorted(b.configs.glob("*.json"))
            if p.stem not in ("train", "inference", "metadata")]  # fmt: skip


def test_there_are_bundles():
    assert {"ct_lightweight", "cell_ddpm", "cxr_cfg", "derm_dreambooth", "histo_feature_aligned"} <= {
        b.name for b in BUNDLES
    }


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_bundle_files(bundle):
    for rel in ("configs/metadata.json", "configs/train.json", "configs/inference.json", "configs/logging.conf",
                "docs/README.md", "LICENSE"):  # fmt: skip
        assert (bundle.root / rel).is_file(), f"{bundle.name} lacks {rel}"


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
@pytest.mark.parametrize("kind", ["train", "inference"])
def test_standalone_configs(bundle, kind):
    parser = bundle.parser(kind)
    missing = [k for k in CONTRACT[kind] if k not in parser.config]
    assert not missing, f"{bundle.name}/{kind}.json lacks top-level keys {missing}"
    text = (bundle.configs / f"{kind}.json").read_text()
    for sub in ("models", "samples") + (("tensorboard",) if kind == "train" else ()):  # outputs under output_dir
        assert f"'{sub}'" in text, f"{bundle.name}/{kind}.json does not write to output_dir/{sub}"


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_the_measured_sampler_is_the_default(bundle):
    """Training sample grids and every sampling config (inference.json; the overlays inherit train.json's) use the
    sampler and step count chosen in docs/benchmarks.md (samplers against model evaluations)."""
    for kind in ("train", "inference"):
        parser = bundle.parser(kind)
        assert parser["scheduler_type"] == DEFAULT_SCHEDULER_TYPE, f"{bundle.name}/{kind}.json"
        assert parser["num_inference_steps"] == DEFAULT_NUM_INFERENCE_STEPS, f"{bundle.name}/{kind}.json"
    grid = bundle.parser("train").get_parsed_content("sample_scheduler")
    expected = sampling_scheduler(DEFAULT_SCHEDULER_TYPE)
    assert type(grid) is type(expected) and getattr(grid, "stochastic", None) == getattr(expected, "stochastic", None)
    for overlay in ("export", "audit", "evaluate"):
        own = json.loads((bundle.configs / f"{overlay}.json").read_text())
        assert "scheduler_type" not in own and "num_inference_steps" not in own, f"{bundle.name}/{overlay}.json"


@pytest.mark.parametrize("bundle, overlay", OVERLAYS, ids=lambda x: getattr(x, "name", x))
def test_overlays_stack_on_train(bundle, overlay):
    """An overlay holds only what differs from train.json: no copy of its imports or contract keys unless changed."""
    own = json.loads((bundle.configs / f"{overlay}.json").read_text())
    train = json.loads((bundle.configs / "train.json").read_text())
    assert "imports" not in own and "bundle_root" not in own, f"{overlay}.json repeats train.json's set-up"
    copies = [k for k, v in own.items() if k in train and train[k] == v]
    assert not copies, f"{bundle.name}/{overlay}.json repeats train.json's values of {copies}"
    merged = bundle.parser(overlay)
    missing = [k for k in CONTRACT["train"] + CONTRACT["overlays"].get(overlay, []) if k not in merged.config]
    assert not missing, f"{bundle.name}/{overlay}.json (on train.json) lacks top-level keys {missing}"


@pytest.mark.parametrize(
    "path", sorted((REPO / "bundles").glob("*/configs/*.json")), ids=lambda p: p.parent.parent.name + "/" + p.name
)
def test_short_expressions_and_no_config_runs_another(path):
    text = path.read_text()
    expressions = re.findall(r'"(\$(?:[^"\\]|\\.)*)"', text)
    long = [e for e in expressions if len(e) > 120]
    assert not long, f"{path.name}: expressions over 120 characters: {long}"
    code = expressions + re.findall(r'"_target_":\s*"([^"]*)"', text)  # what MONAI evaluates or instantiates
    runs = [c for c in code if "monai.bundle" in c or "config_file" in c]
    assert not runs, f"{path.name} runs another config: {runs}"


def test_bundle_json_total_lines():
    """Configs stay short: logic lives in the package. The budget grows only with new configs (3,600 lines up to
    the export.json and audit.json overlays, about 45 lines each per bundle; 3,800 up to multi_gpu_train.json, 20
    lines each; 3,900 up to train_full_size.json, about 12 lines each; 4,020 up to cxr_cfg's evaluate_utility.json,
    86 lines; 4,030 with histo_feature_aligned's alignment options, 13 lines of keys, model_info entries and
    metadata references)."""
    total = sum(len(p.read_text().splitlines()) for p in (REPO / "bundles").glob("*/configs/*.json"))
    assert total <= 4030, f"bundle JSON grew to {total} lines (the budget is 4,030)"
