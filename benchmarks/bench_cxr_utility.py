"""The classifier utility table of ``cxr_cfg`` on PneumoniaMNIST, with the runs that say which lever moved it.

Steps (every config runs as in the bundle's docs; overlays stacked on ``train.json``; finished steps are reused):

1. ``train.json`` for ``--train-minutes`` of CPU time (the diffusion model; or ``--model-ckpt``).
2. ``train_expert.json`` (ResNet-18, 10 epochs; or ``--expert-ckpt``): the FID features of the dataset-pair table and
   the confidence filter.
3. ``evaluate_utility.json``, the table: real only, synthetic only, real + synthetic 1:1 and 1:2, synthetic
   pre-training then 100 / 10 / 1 % real beside real only on the same subsets; ``--classifier-seeds`` ResNet-18
   seeds, epochs chosen on the real validation split, tested on the 624 real test images; the dataset-pair table.
4. the same pre-training on the same synthetic images, then 10 % real, with ``--subset_epochs scaled`` (the 10 %
   runs train 10x the epochs: as many images seen as on the whole split), beside real only on the same 10 %.
5. levers, synthetic only: 1000 synthetic images (instead of twice the real count) in the four settings (with and
   without augmentation and class weights), and the same 1000 after the expert's confidence filter (0.9).
6. levers of synthetic pre-training then all real data (the table's best row): 4x the real class counts instead
   of 2x, and less guidance (w = 0.5: more diverse images) at 2x; setting of the table, same seeds.

``--steps`` picks which of steps 3-6 run (``table``, ``subset_scaled``, ``levers``, ``pretrain_levers``; the first
three by default); steps 1 and 2 run whenever their checkpoints are missing. It prints one table and writes
``cxr_utility.json`` / ``.md`` into ``--output-dir``.

Usage::

    python benchmarks/bench_cxr_utility.py --output-dir /tmp/cxr_utility      # about 2 h on 2 CPU cores
    python benchmarks/bench_cxr_utility.py --train-minutes 60 --steps table --output-dir /tmp/cxr_utility_60
    python benchmarks/bench_cxr_utility.py --quick --output-dir /tmp/cxr_utility_quick   # pipeline check

The data are PneumoniaMNIST of ``../shared/data`` (``--dataset-dir`` for another copy).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from _common import markdown_table, output_folder, run_bundle, shared_data

BUNDLE = "cxr_cfg"
NPZ = "pneumoniamnist/pneumoniamnist.npz"
CLASS_NAMES = ["normal", "pneumonia"]
METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "f1_macro")
STEPS = ("table", "subset_scaled", "levers", "pretrain_levers")
#: the table's setting (one of the four, for CPU time): geometric augmentation and class-weighted loss
TABLE_SETTING = {"augment_options": [True], "class_weighted_options": [True]}


def summary_rows(report: dict[str, Any], run: str) -> list[dict[str, Any]]:
    """One table line per training row and setting of a ``utility.json`` report: counts and ``mean ± std``."""
    rows = []
    for row, by_setting in report["summary"].items():
        for setting, s in by_setting.items():
            line = {"run": run, "training": row, "setting": setting, "real": s["num_real"],
                    "synthetic": s["num_synthetic"]}  # fmt: skip
            for key in METRICS:
                mean, std = s[key]["mean"], s[key]["std"]
                line[key] = "n/a" if mean is None or std is None else f"{mean:.3f} ± {std:.3f}"
            rows.append(line)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/cxr_utility"))
    parser.add_argument("--dataset-dir", default=None, help="PneumoniaMNIST .npz (default: the shared copy)")
    parser.add_argument("--train-minutes", type=float, default=15.0, help="CPU minutes of diffusion training")
    parser.add_argument("--model-ckpt", type=Path, default=None, help="a trained cxr_cfg model.pt (skips step 1)")
    parser.add_argument("--expert-ckpt", type=Path, default=None, help="a trained expert (skips step 2)")
    parser.add_argument("--classifier-seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4, help="classifier epochs (real, mixes, synthetic)")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS[:3]), help="steps 3-6 to run")
    parser.add_argument("--quick", action="store_true", help="tiny run to check the pipeline (figures meaningless)")
    args = parser.parse_args()
    data = shared_data(args.dataset_dir, NPZ)
    out, log = output_folder(args.output_dir)
    seeds, epochs, tune = args.classifier_seeds, args.epochs, args.finetune_epochs
    quick: dict[str, Any] = {}
    lever_counts = [258, 742]  # 1000 images in the real class proportions (1214 : 3494)
    if args.quick:
        seeds, epochs, tune, lever_counts = 2, 1, 1, [8, 8]
        quick = {"num_inference_steps": 5, "ssim_pairs": 50}
    common = {"dataset_dir": data, "class_names": CLASS_NAMES, "device": "cpu"}
    times: dict[str, float] = {}

    model = args.model_ckpt or out / "model" / "models" / "model.pt"
    if not model.is_file():
        minutes = 1.0 if args.quick else args.train_minutes
        times["diffusion training"] = run_bundle(BUNDLE, "train", log, output_dir=out / "model", max_epochs=1000,
                                                 max_train_minutes=minutes, sample_interval=0, **common)  # fmt: skip
    expert = args.expert_ckpt or out / "expert" / "models" / "expert" / "best_model.pt"
    if not expert.is_file():
        times["expert"] = run_bundle(BUNDLE, "train_expert", log, output_dir=out / "expert",
                                     max_epochs=1 if args.quick else 10, sample_interval=0, **common)  # fmt: skip

    def utility(name: str, **overrides: Any) -> dict[str, Any]:
        """One ``evaluate_utility.json`` run into ``eval/<name>`` (reused when its report exists)."""
        eval_dir = out / "eval" / name
        report = eval_dir / "utility.json"
        if not report.is_file():
            times[name] = run_bundle(BUNDLE, "evaluate_utility", log, output_dir=out, eval_dir=eval_dir,
                                     ckpt_path=model, expert_ckpt=expert, num_seeds=seeds, max_epochs=epochs,
                                     pretrain_epochs=epochs, finetune_epochs=tune, **common, **quick,
                                     **overrides)  # fmt: skip
        return json.loads(report.read_text())

    main_run = utility("table", **TABLE_SETTING)
    table = summary_rows(main_run, "table")
    notes: list[str] = []
    twice = main_run["settings"]["synthetic_per_class"]["synthetic_only"]  # the table's synthetic counts per class
    if "subset_scaled" in args.steps:
        scaled = utility("subset_scaled", **TABLE_SETTING, subset_epochs="scaled", real_fractions=[0.1],
                         samples_per_class=twice,
                         **{"utility#conditions": ["synthetic_then_real"], "utility#pair_table": False})  # fmt: skip
        table += summary_rows(scaled, "10 % scaled epochs")
    if "levers" in args.steps:
        levers = utility("levers_1000", samples_per_class=lever_counts,
                         **{"utility#conditions": ["synthetic_only"], "utility#pair_table": False})  # fmt: skip
        filtered = utility("levers_1000_filter", samples_per_class=lever_counts, **TABLE_SETTING,
                           filter_confidence=0.9,
                           **{"utility#conditions": ["synthetic_only"], "utility#pair_table": False})  # fmt: skip
        table += summary_rows(levers, "1000 synthetic") + summary_rows(filtered, "1000 synthetic, filtered 0.9")
        notes.append("filter acceptance: " + json.dumps(filtered["settings"]["synthetic_filter"]))
    if "pretrain_levers" in args.steps:
        pretrain = {**TABLE_SETTING, "real_fractions": [1.0],
                    "utility#conditions": ["synthetic_only", "synthetic_then_real"],
                    "utility#pair_table": False}  # fmt: skip
        four = utility("pretrain_4x", samples_per_class=[2 * n for n in twice], **pretrain)
        table += summary_rows(four, "4x real counts")
        less_guided = utility("pretrain_w0.5", samples_per_class=twice, guidance_scale=0.5, **pretrain)
        table += summary_rows(less_guided, "w = 0.5")
    header = ["run", "training", "setting", "real", "synthetic", *METRICS]
    pairs = [{k: p[k] for k in ("set_a", "set_b", "num_a", "num_b", "fid", "ssim")} for p in main_run["dataset_pairs"]]
    text = "\n\n".join([
        f"cxr_cfg on PneumoniaMNIST, {seeds} classifier seeds (mean ± std), test = the real test split",
        markdown_table(table, header),
        markdown_table(pairs, ["set_a", "set_b", "num_a", "num_b", "fid", "ssim"]),
        *notes,
        "wall time of the steps run now (s): " + json.dumps({k: round(v) for k, v in times.items()}),
    ])  # fmt: skip
    print(text)
    (out / "cxr_utility.md").write_text(text + "\n")
    (out / "cxr_utility.json").write_text(json.dumps({"rows": table, "pairs": pairs, "times": times}, indent=2))


if __name__ == "__main__":
    main()
