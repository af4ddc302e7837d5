"""Wall time of every bundle's documented default commands on its embedded demo data, as a new user runs them.

Each bundle's commands run in order through ``python -m monai.bundle run`` (overlays such as ``evaluate.json``
stacked on the bundle's ``train.json``, as in the docs) with no overrides except a fresh ``--output_dir`` under
``--output-dir`` (the demo data are written to ``data/`` of ``--work-dir`` on first use, as in the docs). It prints one
markdown table (bundle, config, seconds, exit status) and writes ``bundle_defaults.json``; run it on an otherwise idle
machine (two PyTorch processes on two cores slow each other down several-fold). ``--quick`` is a pipeline check
instead: every command gets the tiny sizes of the bundle tests (seconds per command; the times mean nothing).

Usage::

    python benchmarks/bench_bundle_defaults.py --bundles cxr_cfg histo_feature_aligned derm_dreambooth
    python benchmarks/bench_bundle_defaults.py --bundles ct_lightweight --quick --output-dir /tmp/defaults \\
        --work-dir /tmp/defaults
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from _common import REPO, BundleRunError, run_bundle

# the order of each bundle's docs (experts before the configs that need them)
SEQUENCES: dict[str, list[str]] = {
    "ct_lightweight": ["train", "inference", "train_expert", "evaluate"],
    "cell_ddpm": ["train", "inference", "train_expert", "evaluate"],
    "cxr_cfg": ["train", "inference", "train_expert", "evaluate", "evaluate_pretraining"],
    "histo_feature_aligned": ["train_expert", "train", "inference", "evaluate", "train_fewshot"],
    "derm_dreambooth": ["train", "train_fewshot", "inference", "train_expert", "evaluate", "evaluate_augmented"],
}

#: ``--quick``: the tiny sizes of the bundle tests (tests/bundles/test_readme_commands.py), given to every command
QUICK: dict[str, Any] = {
    "max_epochs": 1, "image_size": 16, "channels": [8, 16], "batch_size": 8, "num_head_channels": 8,
    "num_inference_steps": 2, "prior_inference_steps": 2, "num_grid_samples": 4, "num_samples": 8, "num_seeds": 1,
    "samples_per_class": 2, "sweep_samples_per_class": 2, "num_class_images": 2, "pretrain_epochs": 1,
    "finetune_epochs": 1, "real_epochs": 1, "cpu_bf16": False, "max_instance_images": 2, "expert_input_size": 32,
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", nargs="+", default=sorted(SEQUENCES), choices=sorted(SEQUENCES))
    parser.add_argument("--output-dir", type=Path, default=Path("runs/bundle_defaults"))
    parser.add_argument("--work-dir", type=Path, default=REPO, help="folder the commands run in (demo data: its data/)")
    parser.add_argument("--quick", action="store_true", help="pipeline check: tiny sizes for every command")
    args = parser.parse_args()
    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    overrides = QUICK if args.quick else {}
    rows = []
    for bundle in args.bundles:
        log = out / f"{bundle}.log"
        for config in SEQUENCES[bundle]:
            rc = 0
            try:
                seconds = run_bundle(bundle, config, log, cwd=args.work_dir, output_dir=out / bundle, **overrides)
            except BundleRunError as e:
                seconds, rc = e.seconds, e.returncode
            rows.append({"bundle": bundle, "config": config, "seconds": round(seconds, 1), "exit": rc})
            print(json.dumps(rows[-1]), flush=True)
            if rc != 0:
                break
    lines = ["| bundle | config | wall time | exit |", "|---|---|---:|---:|"]
    for r in rows:
        m, s = divmod(r["seconds"], 60)
        lines.append(f"| {r['bundle']} | {r['config']}.json | {int(m)} min {s:.0f} s | {r['exit']} |")
    table = "\n".join(lines)
    print(table)
    (out / "bundle_defaults.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
