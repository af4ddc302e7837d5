"""Feature-aligned diffusion vs the baseline at the same budget: generation accuracy along training, side by side.

Runs the real configs of ``bundles/histo_feature_aligned`` through ``monai.bundle`` (the overlays stacked on its
``train.json``, as in its docs) on one class-folder data set (by default the 6-class MedNIST of
``../shared/data/mednist64``, unzipped into ``--data-dir``, outside the repository):

1. ``train_expert.json`` twice: the **alignment expert** (the frozen classifier whose features of the noisy input the
   U-Net is aligned to) and a separate **evaluation expert** (other architecture, other seed). Generation accuracy is
   measured with the evaluation expert, so an aligned model cannot score well merely by matching the features of
   the classifier that grades it.
2. ``train.json`` for every condition (default: ``baseline`` = ``feature_alignment false``, ``aligned_noisy`` = the
   seed method, ``aligned_clean`` = the expert sees the clean image instead of x_t), same seed, data, network and
   number of iterations; one run per condition up to the last of ``--stages``, keeping the EMA weights of every stage
   (``snapshot_epochs``), so every stage lies on the same learning-rate schedule.
3. ``evaluate.json`` at every stage with the evaluation expert: generation accuracy over ``--num-seeds`` sampling
   seeds (mean ± std; identical noise for every model), intra-class SSIM diversity and FID/KID in the evaluation
   expert's features against the ``val`` split; the final stage is also scored by the alignment expert.

It prints one markdown table (and writes ``alignment_study.json`` / ``.md`` into ``--output-dir``); finished steps
are reused, so an interrupted study continues.

Usage::

    python benchmarks/bench_feature_alignment.py --output-dir /tmp/alignment_study            # MedNIST, 32 px
    python benchmarks/bench_feature_alignment.py --dataset-dir /data/crc_tiles --image-size 64 --stages 10 20 40
    python benchmarks/bench_feature_alignment.py --quick --output-dir /tmp/alignment_quick   # pipeline check
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path
from typing import Any

from _common import mednist, run_bundle

BUNDLE = "histo_feature_aligned"

CONDITIONS: dict[str, dict[str, object]] = {
    "baseline": {"feature_alignment": False},
    "aligned_noisy": {"feature_alignment": True, "expert_input": "noisy"},
    "aligned_clean": {"feature_alignment": True, "expert_input": "clean"},
    "aligned_noisy_centered": {"feature_alignment": True, "expert_input": "noisy", "center_features": True},
    "aligned_repa": {
        "feature_alignment": True,
        "expert_input": "clean",
        "align_direction": "diffusion_to_expert",
        "projection": "mlp",
    },
}


#: ``--quick``: a pipeline check (one short stage, tiny sample counts, few sampling steps; the figures mean nothing)
QUICK_ARGS: dict[str, Any] = {"image_size": 16, "stages": [1], "expert_epochs": 1, "num_seeds": 1,
                              "samples_per_class": 2, "num_samples": 12}  # fmt: skip
QUICK_OVERRIDES: dict[str, Any] = {"num_inference_steps": 5, "cpu_bf16": False, "expert_input_size": 32}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset-dir", type=Path, default=None, help="class folders (default: MedNIST 6 classes)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/alignment_study"))
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "medsyn_monai_data",
                        help="where MedNIST is unzipped (outside the repository)")  # fmt: skip
    parser.add_argument("--mednist-zip", type=Path, default=None, help="MedNIST archive (default: ../shared/data)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--stages", type=int, nargs="+", default=[4, 8, 16], help="epochs at which to evaluate")
    parser.add_argument("--conditions", nargs="+", default=["baseline", "aligned_noisy", "aligned_clean"])
    parser.add_argument("--num-seeds", type=int, default=5)
    parser.add_argument("--samples-per-class", type=int, default=10)
    parser.add_argument("--num-samples", type=int, default=120, help="samples for FID/KID/SSIM (classes in turn)")
    parser.add_argument("--align-expert", default="resnet18")
    parser.add_argument("--eval-expert", default="densenet121")
    parser.add_argument("--expert-epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="pipeline check: one epoch, 16 px, tiny counts")
    args = parser.parse_args()
    quick = QUICK_OVERRIDES if args.quick else {}
    if args.quick:
        vars(args).update(QUICK_ARGS)
    unknown = sorted(set(args.conditions) - set(CONDITIONS))
    if unknown:
        raise SystemExit(f"unknown condition(s) {unknown}; choose from {sorted(CONDITIONS)}")

    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = (args.dataset_dir or mednist(args.data_dir, archive=args.mednist_zip)).resolve()
    log = out / "study.log"
    common = {"dataset_dir": data, "image_size": args.image_size, "seed": args.seed, **quick}
    experts = {"align": (args.align_expert, args.seed), "eval": (args.eval_expert, args.seed + 1)}
    expert_ckpt = {}
    for role, (name, seed) in experts.items():
        folder = out / f"expert_{role}"
        expert_ckpt[role] = folder / "models" / "expert" / "best_model.pt"
        if not expert_ckpt[role].is_file():
            t = run_bundle(BUNDLE, "train_expert", log, **{**common, "seed": seed}, output_dir=folder,
                           expert_network=name, max_epochs=args.expert_epochs)  # fmt: skip
            print(f"expert {role} ({name}) trained in {t:.0f} s", flush=True)

    rows = []
    stages = sorted(set(args.stages))
    for cond in args.conditions:
        run_dir = out / cond
        models = run_dir / "models"
        # one training run per condition; the weights of every stage are kept as models/model_epoch_XXXX.pt, so the
        # learning-rate schedule is that of the full run (resuming shorter runs would restart its cosine decay)
        train_time = None
        if not all((models / f"model_epoch_{s:04d}.pt").is_file() for s in stages):
            overrides = {**common, **CONDITIONS[cond], "output_dir": run_dir, "max_epochs": stages[-1]}
            overrides |= {"expert_ckpt": expert_ckpt["align"], "sample_interval": 0, "snapshot_epochs": stages}
            train_time = run_bundle(BUNDLE, "train", log, **overrides)
            print(f"{cond}: trained {stages[-1]} epochs in {train_time:.0f} s", flush=True)
        for stage in stages:
            judges = {"eval": expert_ckpt["eval"]}
            if stage == stages[-1]:  # the final models are also scored by the alignment expert
                judges["align"] = expert_ckpt["align"]
            for judge, ckpt in judges.items():
                eval_dir = run_dir / "eval" / (f"epoch_{stage:03d}" + ("" if judge == "eval" else "_align_expert"))
                metrics_path = eval_dir / "metrics.json"
                if not metrics_path.is_file():
                    t = run_bundle(BUNDLE, "evaluate", log, dataset_dir=data, output_dir=run_dir, expert_ckpt=ckpt,
                                   ckpt_path=models / f"model_epoch_{stage:04d}.pt", eval_dir=eval_dir,
                                   num_seeds=args.num_seeds, samples_per_class=args.samples_per_class,
                                   num_samples=args.num_samples, reference_split="val", seed=args.seed,
                                   **quick)  # fmt: skip
                    print(f"{cond} epoch {stage} ({judge} expert): evaluated in {t:.0f} s", flush=True)
                m = json.loads(metrics_path.read_text())
                rows.append({"condition": cond, "epoch": stage, "judge": judge, **{
                    k: m.get(k) for k in ("generation_accuracy_mean", "generation_accuracy_std", "ssim_intra_synthetic",
                                          "ssim_intra_real", "fid", "kid_mean", "precision", "recall")}})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
        log_rows = list(csv.DictReader(open(run_dir / "train_log.csv")))
        seconds = sum(float(r["epoch_seconds"]) for r in log_rows)
        for r in rows:
            if r["condition"] == cond:
                r["train_s_total"] = round(seconds, 1)

    header = (
        "| condition | epoch | judge | generation accuracy (mean ± std) | SSIM intra synth / real | FID | "
        "precision / recall | train s (all epochs) |"
    )
    lines = [header, "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['condition']} | {r['epoch']} | {r['judge']}"
            f" | {r['generation_accuracy_mean']:.3f} ± {r['generation_accuracy_std']:.3f}"
            f" | {r['ssim_intra_synthetic']:.3f} / {r['ssim_intra_real']:.3f} | {r['fid']:.1f}"
            f" | {r['precision']:.2f} / {r['recall']:.2f} | {r['train_s_total']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    settings = vars(args) | {"dataset_dir": str(data), "output_dir": str(out)}
    (out / "alignment_study.json").write_text(json.dumps({"args": settings, "rows": rows}, indent=2, default=str))
    (out / "alignment_study.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
