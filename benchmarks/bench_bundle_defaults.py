"""Wall time of every bundle's documented default commands on its embedded demo data, as a new user runs them.

Each bundle's commands run in order through ``python -m monai.bundle run`` with no overrides except a fresh
``--output_dir`` under ``--output-dir`` (the demo data are written to ``data/`` on first use, as in the docs). It prints
one markdown table (bundle, config, seconds, exit status) and writes ``bundle_defaults.json``; run it on an otherwise
idle machine (two PyTorch processes on two cores slow each other down several-fold).

Usage::

    python benchmarks/bench_bundle_defaults.py --bundles cxr_cfg histo_feature_aligned derm_dreambooth
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# the order of each bundle's docs (experts before the configs that need them)
SEQUENCES: dict[str, list[str]] = {
    "ct_lightweight": ["train", "inference", "train_expert", "evaluate"],
    "cell_ddpm": ["train", "inference", "train_expert", "evaluate"],
    "cxr_cfg": ["train", "inference", "train_expert", "evaluate", "evaluate_pretraining"],
    "histo_feature_aligned": ["train_expert", "train", "inference", "evaluate", "train_fewshot"],
    "derm_dreambooth": ["train", "train_fewshot", "inference", "train_expert", "evaluate", "evaluate_augmented"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", nargs="+", default=sorted(SEQUENCES), choices=sorted(SEQUENCES))
    parser.add_argument("--output-dir", type=Path, default=Path("runs/bundle_defaults"))
    args = parser.parse_args()
    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for bundle in args.bundles:
        run_dir = out / bundle
        log = out / f"{bundle}.log"
        for config in SEQUENCES[bundle]:
            cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
                   f"bundles/{bundle}/configs/{config}.json", "--output_dir", str(run_dir)]  # fmt: skip
            start = time.perf_counter()
            with open(log, "a") as f:
                f.write(" ".join(cmd) + "\n")
                f.flush()
                rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO).returncode
            rows.append({"bundle": bundle, "config": config, "seconds": round(time.perf_counter() - start, 1),
                         "exit": rc})  # fmt: skip
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
