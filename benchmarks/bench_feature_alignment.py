"""Feature-aligned diffusion vs the baseline at the same budget: generation accuracy along training, side by side.

Runs the real configs of ``bundles/histo_feature_aligned`` through ``monai.bundle`` (the overlays stacked on its
``train.json``, as in its docs) on one class-folder data set (by default the 6-class MedNIST of
``../shared/data/mednist64``, unzipped into ``--data-dir``, outside the repository):

1. ``train_expert.json`` twice: the **alignment expert** (the frozen classifier whose features of the noisy input the
   U-Net is aligned to; ``--align-expert-input-size`` sets the size it sees, so that its feature map has more than
   one location for the spatial conditions) and a separate **evaluation expert** (other architecture, other seed).
   Generation accuracy is measured with the evaluation expert (the independent judge), so an aligned model cannot
   score well merely by matching the features of the classifier that grades it.
2. ``train.json`` for every condition and training seed (``--train-seeds``): same data, network, alignment expert
   and number of iterations; one run per condition and seed up to the last of ``--stages``, keeping the EMA weights
   of every stage (``snapshot_epochs``), so every stage lies on the same learning-rate schedule. The conditions
   (``CONDITIONS``) are the baseline, the seed method, and the remedies the representation-alignment literature
   reports for a collapsed pooled alignment: batch-centred targets, spatial (per-location) alignment at the U-Net's
   middle stage with a convolutional projector and spatial normalisation (U-REPA, iREPA), the same switched off
   after 40 % of training (HASTE), REPA's MLP projector.
3. ``evaluate.json`` at every stage with the evaluation expert: generation accuracy over ``--num-seeds`` sampling
   seeds (identical noise for every model), intra-class SSIM diversity and FID/KID in the evaluation expert's
   features against the ``val`` split; the final stage is also scored by the alignment expert.

It prints and writes (``alignment_study.json`` / ``.md`` in ``--output-dir``) one row per run and stage, a summary
over the training seeds (mean ± std across seeds of each run's mean generation accuracy, FID, SSIM), the goal check
(points gained over the baseline at the end; the first stage at which a condition reaches the baseline's final
accuracy) and the alignment curves of every run (``alignment_curves.csv``: per epoch ``loss_align``,
``loss_align_shuffled`` — the same loss against another image's target: no larger than ``loss_align`` means no
per-image information —, ``align_proj_std``, ``align_target_std``). Finished steps are reused, so an interrupted
study continues.

Usage::

    python benchmarks/bench_feature_alignment.py --output-dir /tmp/alignment_study            # MedNIST, 32 px
    python benchmarks/bench_feature_alignment.py --dataset-dir /data/crc_tiles --image-size 64 --stages 10 20 40 80
    python benchmarks/bench_feature_alignment.py --quick --output-dir /tmp/alignment_quick   # pipeline check
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _common import mednist, output_folder, run_bundle

from medsyn_monai.utils.io import write_csv

BUNDLE = "histo_feature_aligned"

SPATIAL: dict[str, object] = {"feature_alignment": True, "expert_input": "noisy", "align_spatial": True,
                              "projection": "conv", "align_module": "middle_block"}  # fmt: skip

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
    # U-REPA + iREPA: per-location alignment at the middle stage, 3x3 conv projector, spatial normalisation
    "aligned_spatial": SPATIAL,
    # the same with HASTE's schedule: alignment off after 40 % of the iterations
    "aligned_spatial_haste": {**SPATIAL, "alignment_stop_fraction": 0.4},
    # and batch-centred at every location: a layout shared by all images no longer satisfies the loss
    "aligned_spatial_centered_haste": {**SPATIAL, "center_features": True, "alignment_stop_fraction": 0.4},
}

DEFAULT_CONDITIONS = ["baseline", "aligned_noisy", "aligned_noisy_centered", "aligned_spatial",
                      "aligned_spatial_haste"]  # fmt: skip

#: ``--quick``: a pipeline check (one short stage, tiny sample counts, few sampling steps; the figures mean nothing)
QUICK_ARGS: dict[str, Any] = {"image_size": 16, "stages": [1, 2], "expert_epochs": 1, "num_seeds": 1,
                              "samples_per_class": 2, "num_samples": 12, "align_expert_input_size": 64,
                              "train_seeds": [0, 1]}  # fmt: skip
QUICK_OVERRIDES: dict[str, Any] = {"num_inference_steps": 5, "cpu_bf16": False, "expert_input_size": 32}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset-dir", type=Path, default=None, help="class folders (default: MedNIST 6 classes)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/alignment_study"))
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "medsyn_monai_data",
                        help="where MedNIST is unzipped (outside the repository)")  # fmt: skip
    parser.add_argument("--mednist-zip", type=Path, default=None, help="MedNIST archive (default: ../shared/data)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--stages", type=int, nargs="+", default=[5, 10, 20, 40], help="epochs at which to evaluate")
    parser.add_argument("--conditions", nargs="+", default=DEFAULT_CONDITIONS, help=f"of {sorted(CONDITIONS)}")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1], help="training seeds per condition")
    parser.add_argument("--num-seeds", type=int, default=5)
    parser.add_argument("--samples-per-class", type=int, default=10)
    parser.add_argument("--num-samples", type=int, default=120, help="samples for FID/KID/SSIM (classes in turn)")
    parser.add_argument("--align-expert", default="resnet18")
    parser.add_argument("--eval-expert", default="densenet121")
    parser.add_argument("--expert-epochs", type=int, default=8)
    parser.add_argument("--align-expert-input-size", type=int, default=128,
                        help="alignment expert's input size (a ResNet's map is 1/32 of it: 128 -> 4 x 4)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the experts and of the evaluations")
    parser.add_argument("--quick", action="store_true", help="pipeline check: one epoch, 16 px, tiny counts")
    args = parser.parse_args()
    quick = QUICK_OVERRIDES if args.quick else {}
    if args.quick:
        vars(args).update(QUICK_ARGS)
    unknown = sorted(set(args.conditions) - set(CONDITIONS))
    if unknown:
        raise SystemExit(f"unknown condition(s) {unknown}; choose from {sorted(CONDITIONS)}")

    out, log = output_folder(args.output_dir, "study.log")
    data = (args.dataset_dir or mednist(args.data_dir, archive=args.mednist_zip)).resolve()
    common = {"dataset_dir": data, "image_size": args.image_size, "seed": args.seed, **quick}
    experts = {"align": (args.align_expert, args.seed, {"expert_input_size": args.align_expert_input_size}),
               "eval": (args.eval_expert, args.seed + 1, {})}  # fmt: skip
    expert_ckpt = {}
    for role, (name, seed, extra) in experts.items():
        folder = out / f"expert_{role}"
        expert_ckpt[role] = folder / "models" / "expert" / "best_model.pt"
        if not expert_ckpt[role].is_file():
            t = run_bundle(BUNDLE, "train_expert", log, **{**common, "seed": seed, **extra}, output_dir=folder,
                           expert_network=name, max_epochs=args.expert_epochs)  # fmt: skip
            print(f"expert {role} ({name}) trained in {t:.0f} s", flush=True)

    rows: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    stages = sorted(set(args.stages))
    for cond in args.conditions:
        for train_seed in args.train_seeds:
            rows += run_condition(args, cond, train_seed, out, data, common, expert_ckpt, stages, log, quick)
            curves += alignment_curve(out / cond / f"seed_{train_seed}", cond, train_seed)

    summary = summarise(rows, args.conditions, stages)
    text = "\n\n".join([runs_table(rows), summary_table(summary), goal_lines(summary, stages), curve_table(curves)])
    print(text)
    settings = vars(args) | {"dataset_dir": str(data), "output_dir": str(out)}
    (out / "alignment_study.json").write_text(
        json.dumps({"args": settings, "rows": rows, "summary": summary}, indent=2, default=str)
    )
    (out / "alignment_study.md").write_text(text + "\n")
    if curves:
        write_csv(out / "alignment_curves.csv", curves, list(curves[0]))


def run_condition(args: argparse.Namespace, cond: str, train_seed: int, out: Path, data: Path,
                  common: dict[str, Any], expert_ckpt: dict[str, Path], stages: list[int], log: Path,
                  quick: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    """Train one condition with one seed (unless its stage weights exist) and evaluate every stage."""
    run_dir = out / cond / f"seed_{train_seed}"
    models = run_dir / "models"
    # one training run per condition and seed; the weights of every stage are kept as models/model_epoch_XXXX.pt,
    # so the learning-rate schedule is that of the full run (resuming shorter runs would restart its cosine decay)
    if not all((models / f"model_epoch_{s:04d}.pt").is_file() for s in stages):
        overrides = {**common, **CONDITIONS[cond], "seed": train_seed, "output_dir": run_dir, "max_epochs": stages[-1]}
        overrides |= {"expert_ckpt": expert_ckpt["align"], "sample_interval": 0, "snapshot_epochs": stages}
        train_time = run_bundle(BUNDLE, "train", log, **overrides)
        print(f"{cond} seed {train_seed}: trained {stages[-1]} epochs in {train_time:.0f} s", flush=True)
    log_rows = list(csv.DictReader(open(run_dir / "train_log.csv")))
    seconds = sum(float(r["epoch_seconds"]) for r in log_rows)
    rows = []
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
                print(f"{cond} seed {train_seed} epoch {stage} ({judge} expert): evaluated in {t:.0f} s", flush=True)
            m = json.loads(metrics_path.read_text())
            iterations = int(log_rows[stage - 1]["iteration"]) if stage <= len(log_rows) else None
            rows.append({"condition": cond, "train_seed": train_seed, "epoch": stage, "iterations": iterations,
                         "judge": judge, "train_s_total": round(seconds, 1), **{
                k: m.get(k) for k in ("generation_accuracy_mean", "generation_accuracy_std", "ssim_intra_synthetic",
                                      "ssim_intra_real", "fid", "kid_mean", "precision", "recall")}})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def alignment_curve(run_dir: Path, cond: str, train_seed: int) -> list[dict[str, Any]]:
    """Per-epoch alignment statistics of one run (empty for a run without alignment)."""
    keys = ("mean_loss_align", "mean_loss_align_shuffled", "mean_align_proj_std", "mean_align_target_std",
            "mean_loss_noise")  # fmt: skip
    out = []
    for r in csv.DictReader(open(run_dir / "train_log.csv")):
        if "mean_loss_align" not in r:
            return []
        out.append({"condition": cond, "train_seed": train_seed, "epoch": int(r["epoch"]),
                    **{k.removeprefix("mean_"): float(r[k]) if r.get(k) not in (None, "") else math.nan
                       for k in keys}})  # fmt: skip
    return out


def summarise(rows: list[dict[str, Any]], conditions: list[str], stages: list[int]) -> dict[str, Any]:
    """Mean ± std across training seeds of each run's figures, per condition and stage (evaluation expert)."""
    summary: dict[str, Any] = {}
    for cond in conditions:
        summary[cond] = {}
        for stage in stages:
            sel = [r for r in rows if r["condition"] == cond and r["epoch"] == stage and r["judge"] == "eval"]
            entry: dict[str, Any] = {"train_seeds": len(sel)}
            for key in ("generation_accuracy_mean", "fid", "ssim_intra_synthetic"):
                values = np.array([float(r[key]) for r in sel], dtype=float)
                entry[key] = {"mean": float(values.mean()), "std": float(values.std())}
            entry["sampling_std_mean"] = float(np.mean([float(r["generation_accuracy_std"]) for r in sel]))
            entry["iterations"] = sel[0]["iterations"] if sel else None
            summary[cond][str(stage)] = entry
    return summary


def runs_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| condition | train seed | epoch | judge | generation accuracy (mean ± std, sampling seeds) | "
        "SSIM intra synth / real | FID | precision / recall | train s (all epochs) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['condition']} | {r['train_seed']} | {r['epoch']} | {r['judge']}"
            f" | {r['generation_accuracy_mean']:.3f} ± {r['generation_accuracy_std']:.3f}"
            f" | {r['ssim_intra_synthetic']:.3f} / {r['ssim_intra_real']:.3f} | {r['fid']:.1f}"
            f" | {r['precision']:.2f} / {r['recall']:.2f} | {r['train_s_total']:.0f} |"
        )
    return "\n".join(lines)


def summary_table(summary: dict[str, Any]) -> str:
    lines = [
        "| condition | epoch | iterations | generation accuracy (mean ± std over training seeds) | "
        "mean sampling-seed std | FID | SSIM intra |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for cond, stages in summary.items():
        for stage, e in stages.items():
            g, f, s = e["generation_accuracy_mean"], e["fid"], e["ssim_intra_synthetic"]
            lines.append(
                f"| {cond} | {stage} | {e['iterations']} | {g['mean']:.3f} ± {g['std']:.3f} | "
                f"{e['sampling_std_mean']:.3f} | {f['mean']:.1f} ± {f['std']:.1f} | {s['mean']:.3f} ± {s['std']:.3f} |"
            )
    return "\n".join(lines)


def goal_lines(summary: dict[str, Any], stages: list[int]) -> str:
    """The issue's goal: +5 points at the end, or the baseline's final accuracy in at most half the iterations."""
    if "baseline" not in summary:
        return "(no baseline condition: no goal check)"
    last = str(stages[-1])
    base_final = summary["baseline"][last]["generation_accuracy_mean"]["mean"]
    lines = [f"Goal check against the baseline's final generation accuracy {base_final:.3f} (epoch {last}):", ""]
    for cond, by_stage in summary.items():
        if cond == "baseline":
            continue
        gain = 100 * (by_stage[last]["generation_accuracy_mean"]["mean"] - base_final)
        reached = next((s for s in by_stage if by_stage[s]["generation_accuracy_mean"]["mean"] >= base_final), None)
        when = f"reached at epoch {reached}" if reached else "not reached"
        half = reached is not None and int(reached) <= stages[-1] / 2
        met = "met" if gain >= 5 or half else "not met"
        lines.append(f"- {cond}: {gain:+.1f} points at epoch {last}; baseline's final accuracy {when} — goal {met}")
    return "\n".join(lines)


def curve_table(curves: list[dict[str, Any]]) -> str:
    """First, second and last epoch of every aligned run's alignment statistics, and the last epoch with alignment
    on when the run switched it off (HASTE; ``off`` in the epochs after)."""

    def fmt(value: float) -> str:
        return "off" if math.isnan(value) else f"{value:.4g}"

    lines = ["| condition | train seed | epoch | loss_align | same, another image's target | align_proj_std | "
             "align_target_std |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for key in sorted({(c["condition"], c["train_seed"]) for c in curves}):
        run = [c for c in curves if (c["condition"], c["train_seed"]) == key]
        last_on = [c for c in run if not math.isnan(c["loss_align"])][-1:]
        for c in {id(x): x for x in (run[0], run[min(1, len(run) - 1)], *last_on, run[-1])}.values():
            values = (c["loss_align"], c["loss_align_shuffled"], c["align_proj_std"], c["align_target_std"])
            lines.append(f"| {c['condition']} | {c['train_seed']} | {c['epoch']} | " + " | ".join(map(fmt, values))
                         + " |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
