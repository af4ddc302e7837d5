"""``train_full_size.json`` of every bundle (the GPU recipe at the resolution users have) parses and trains on the
CPU with the recipe's own network (its width, levels and attention) at a small image size: one epoch of a tiny demo
data set, a checkpoint whose network config is the recipe's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from medsyn_monai.apps.demo import create_demo
from tests.bundles._bundle import Bundle

DEMOS: dict[str, tuple[str, dict[str, Any]]] = {
    "ct_lightweight": ("ct", {"num_cases": 4, "num_slices": 2, "size": 64}),
    "cxr_cfg": ("cxr", {"num_per_class": 4, "size": 32}),
    "cell_ddpm": ("cells", {"num_per_class": 3, "size": 32}),
    "histo_feature_aligned": ("histo", {"num_per_class": 4, "size": 32}),
    "derm_dreambooth": ("derm", {"num_per_class": 4, "num_instance": 2, "size": 32}),
}


@pytest.mark.parametrize("name", sorted(DEMOS))
def test_recipe_parses_and_steps(name, tmp_path):
    bundle = Bundle(name)
    recipe = json.loads((bundle.configs / "train_full_size.json").read_text())
    assert recipe["image_size"] >= 128 and len(recipe["channels"]) == 4
    kind, params = DEMOS[name]
    data = create_demo(kind, tmp_path / "demo", **params)
    small = {"image_size": 32, "batch_size": 2, "max_epochs": 1, "num_workers": 0, "sample_interval": 0,
             "warmup_steps": 1, "device": "cpu", "cpu_bf16": False, "val_fraction": 0.25, "test_fraction": 0.25,
             "num_grid_samples": 2, "num_inference_steps": 2}  # fmt: skip
    if name == "histo_feature_aligned":  # the frozen expert of feature alignment, at the same size
        bundle.run("train_expert", dataset_dir=str(data), output_dir=str(tmp_path / "run"), max_epochs=1,
                   image_size=32, batch_size=4, device="cpu", expert_network="resnet18",
                   val_fraction=0.25, test_fraction=0.25)  # fmt: skip
    bundle.run("train_full_size", dataset_dir=str(data), output_dir=str(tmp_path / "run"), **small)
    Bundle.check_training_outputs(tmp_path / "run", epochs=1)
    network = Bundle.model_info(tmp_path / "run")["network"]
    text = json.dumps(network)
    assert json.dumps(recipe["channels"]) in text, text  # the recipe's width and levels were trained
    if "attention_levels" in recipe:
        assert json.dumps(recipe["attention_levels"]) in text
