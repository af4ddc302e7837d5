"""cell_ddpm steps_ablation.json: train-time T variants x DDIM sampling steps, through monai.bundle (tiny)."""

from __future__ import annotations

import json
from pathlib import Path

from monai.bundle import run as bundle_run

from medsyn_monai.apps.demo import create_demo

CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / "cell_ddpm" / "configs"


def test_steps_ablation(tmp_path):
    demo = create_demo("cells", tmp_path / "cells", num_per_class=12, size=32)
    out = tmp_path / "steps"
    bundle_run(config_file=str(CONFIGS / "steps_ablation.json"), dataset_dir=str(demo), output_dir=str(out),
               max_epochs=1, image_size=16, batch_size=8, num_samples=8, expert_epochs=1, sampling_steps=[1, 2],
               variants={"T=100": {"num_train_timesteps": 100}, "T=200": {"num_train_timesteps": 200}},
               **{"common_overrides#channels": [8, 16], "common_overrides#cpu_bf16": False},
               logging_file=str(CONFIGS / "logging.conf"))  # fmt: skip
    table = json.loads((out / "ablation.json").read_text())
    assert set(table["variants"]) == {f"T={t}, {s} steps" for t in (100, 200) for s in (1, 2)}
    for row in table["variants"].values():
        assert row["sample_seconds_per_image_mean"] > 0 and row["fid_mean"] >= 0
    info = json.loads((out / "T=200" / "seed_0" / "models" / "model_info.json").read_text())
    assert info["num_train_timesteps"] == 200 and info["in_channels"] == 3
    assert (out / "models" / "expert" / "best_model.pt").is_file()  # trained once, automatically
    assert "sampling s/img" in (out / "ablation.md").read_text()
