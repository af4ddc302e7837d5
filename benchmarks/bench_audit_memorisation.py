"""Memorisation along training, on PneumoniaMNIST: the audit of ``cxr_cfg`` at three points of training, for a model
trained on the whole training split and one trained on 10 % of it (small data sets memorise more).

Steps (every config runs as in the bundle's docs; overlays stacked on ``train.json``):

1. ``train_expert.json`` on the whole training split: the expert whose features give the audit's feature measure.
2. ``train.json`` on the whole training split for ``--epochs`` epochs, keeping snapshots at three points
   (``--snapshot_epochs``); the same on a stratified 10 % subset of the training split for ``--subset-epochs``
   epochs (the same number of iterations: 10 x the epochs), with its snapshots.
3. ``audit.json`` of every snapshot: ``--num-samples`` generated images against the model's own training split,
   the validation + test split (the same 1,148 images for both models) as the held-out reference, flag percentile 1;
   the images are drawn with ``--scheduler-type`` / ``--num-inference-steps`` / ``--guidance-scale`` (the study's
   DDIM-50 at w = 3 by default, so that later points stay comparable with the published ones).

It prints one table (model, epochs, iterations, memorisation rate, flagged per measure, 1st/50th percentiles of the
synthetic→train and held-out→train distances) and writes ``audit_study.json`` / ``.md`` into ``--output-dir``.
Finished steps are reused (delete a step's folder to redo it).

Usage::

    python benchmarks/bench_audit_memorisation.py --output-dir /tmp/audit_study
    python benchmarks/bench_audit_memorisation.py --quick --output-dir /tmp/audit_quick   # pipeline check
    python benchmarks/bench_audit_memorisation.py --models subset --subset-snapshots 50 150 300  # one model only

The data are PneumoniaMNIST of ``../shared/data`` (``--dataset-dir`` for another copy).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import markdown_table, output_folder, run_bundle, shared_data

BUNDLE = "cxr_cfg"
NPZ = "pneumoniamnist/pneumoniamnist.npz"
CLASS_NAMES = ["normal", "pneumonia"]


def subset_npz(full: Path, target: Path, fraction: float, seed: int = 0) -> Path:
    """A copy of ``full`` whose training split is a stratified ``fraction`` of the original (val/test unchanged)."""
    if target.is_file():
        return target
    data = dict(np.load(full))
    labels = data["train_labels"].reshape(-1)
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[: max(1, round(fraction * (labels == c).sum()))]
                           for c in np.unique(labels)])  # fmt: skip
    keep.sort()
    data["train_images"], data["train_labels"] = data["train_images"][keep], data["train_labels"][keep]
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, **data)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/audit_study"))
    parser.add_argument("--dataset-dir", default=None, help="PneumoniaMNIST .npz (default: the shared copy)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--snapshots", type=int, nargs=3, default=[5, 15, 30], help="epochs of the full model")
    parser.add_argument("--subset-fraction", type=float, default=0.1)
    parser.add_argument(
        "--subset-snapshots",
        type=int,
        nargs="+",
        default=None,
        help="epochs of the subset model to audit (default: 1/fraction x --snapshots)",
    )
    parser.add_argument("--models", nargs="+", choices=["full", "subset"], default=["full", "subset"],
                        help="which models to train and audit (default: both)")  # fmt: skip
    parser.add_argument("--num-samples", type=int, default=400)
    parser.add_argument("--expert-epochs", type=int, default=10)
    parser.add_argument("--scheduler-type", default="ddim", help="sampler of the audited images (the study's: DDIM)")
    parser.add_argument("--num-inference-steps", type=int, default=50)
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the pipeline (figures meaningless)")
    args = parser.parse_args()
    full = shared_data(args.dataset_dir, NPZ)
    out, log = output_folder(args.output_dir)
    epochs, snapshots, samples, expert_epochs = args.epochs, list(args.snapshots), args.num_samples, args.expert_epochs
    if args.quick:
        epochs, snapshots, samples, expert_epochs = 3, [1, 2, 3], 32, 1
        args.num_inference_steps = 10
    sampling = {"scheduler_type": args.scheduler_type, "num_inference_steps": args.num_inference_steps,
                "guidance_scale": args.guidance_scale}  # fmt: skip
    if sorted(snapshots) != snapshots or snapshots[-1] != epochs:
        parser.error(f"--snapshots must be increasing and end at --epochs ({epochs}), got {snapshots}")
    scale = round(1 / args.subset_fraction)
    small = subset_npz(full, out / "data" / f"pneumoniamnist_train{round(100 * args.subset_fraction)}pct.npz",
                       args.subset_fraction)  # fmt: skip
    common = {"class_names": CLASS_NAMES, "sample_interval": 0, "device": "cpu"}
    times: dict[str, float] = {}

    expert = out / "expert" / "models" / "expert" / "best_model.pt"
    if not expert.is_file():
        times["expert"] = run_bundle(BUNDLE, "train_expert", log, dataset_dir=full, output_dir=out / "expert",
                                     max_epochs=expert_epochs, **common)  # fmt: skip
    subset_snaps = args.subset_snapshots or [s * scale for s in snapshots]
    models = {"full": (full, epochs, snapshots, 1), "subset": (small, epochs * scale, subset_snaps, scale)}
    rows = []
    for name, (data, n_epochs, snaps, interval) in models.items():
        if name not in args.models:
            continue
        run = out / name
        if not (run / "models" / "model.pt").is_file():
            times[f"train_{name}"] = run_bundle(BUNDLE, "train", log, dataset_dir=data, output_dir=run,
                                                max_epochs=n_epochs, snapshot_epochs=snaps,
                                                checkpoint_interval=interval, **common)  # fmt: skip
        iterations_per_epoch = None
        with open(run / "train_log.csv") as f:
            first = f.read().splitlines()[1].split(",")
            iterations_per_epoch = int(first[1]) // int(first[0])
        for epoch in snaps:
            audit_dir = run / "eval" / f"audit_epoch_{epoch:04d}"
            if not (audit_dir / "audit.json").is_file():
                times[f"audit_{name}_{epoch}"] = run_bundle(
                    BUNDLE, "audit", log, dataset_dir=data, output_dir=run, audit_dir=audit_dir,
                    ckpt_path=run / "models" / f"model_epoch_{epoch:04d}.pt", expert_ckpt=expert,
                    num_samples=samples, **sampling, **common)  # fmt: skip
            r = json.loads((audit_dir / "audit.json").read_text())
            syn, hold = r["synthetic_to_train"], r["holdout_to_train"]
            rows.append({
                "model": f"{name} ({r['num_train']} train images)", "epoch": epoch,
                "iterations": epoch * iterations_per_epoch, "memorisation_rate": r["memorisation_rate"],
                "flagged_pixel": r["flagged_by_measure"]["pixel"],
                "flagged_feature": r["flagged_by_measure"].get("feature"), "num_synthetic": r["num_synthetic"],
                "syn_pixel_p1": syn["pixel"]["p1"], "syn_pixel_p50": syn["pixel"]["p50"],
                "hold_pixel_p1": hold["pixel"]["p1"], "hold_pixel_p50": hold["pixel"]["p50"],
                "syn_feature_p50": syn.get("feature", {}).get("p50"),
                "hold_feature_p50": hold.get("feature", {}).get("p50"),
                "duplicates_across_splits": r["data"]["exact_duplicates_across_sets"],
                "near_duplicates_holdout_in_train": r["data"]["near_duplicates_holdout_in_train"],
            })  # fmt: skip

    header = ["model", "epoch", "iterations", "memorisation_rate", "flagged_pixel", "flagged_feature",
              "syn_pixel_p1", "hold_pixel_p1", "syn_pixel_p50", "hold_pixel_p50", "syn_feature_p50",
              "hold_feature_p50"]  # fmt: skip

    table = markdown_table(rows, header, ".4f")
    print(table)
    data_line = (f"data audit: {rows[0]['duplicates_across_splits']} exact duplicate group(s) across train and "
                 f"val+test, {rows[0]['near_duplicates_holdout_in_train']} held-out image(s) with a near duplicate "
                 "(pixel distance <= 0.01) in the full training split")  # fmt: skip
    print(data_line)
    (out / "audit_study.md").write_text(table + "\n\n" + data_line + "\n")
    settings = {**vars(args), "output_dir": str(out), "dataset_dir": str(full), "epochs": epochs,
                "snapshots": snapshots, "num_samples": samples, "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    (out / "audit_study.json").write_text(json.dumps({"settings": settings, "rows": rows, "seconds": times}, indent=2))


if __name__ == "__main__":
    main()
