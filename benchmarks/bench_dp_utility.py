"""What differential privacy costs, on PneumoniaMNIST: ``cxr_cfg`` trained with DP-SGD at ε = 1 and 8 and without
(ε = ∞), the same epochs, batch size and data, side by side; each model scored by synthetic-only classifiers and the
memorisation audit.

Steps (every config runs as in the bundle's docs; overlays stacked on ``train.json``):

1. ``train.json`` with ``--dp_epsilon`` 1, 8 and none (``--epochs`` epochs each; wall time recorded: DP-SGD computes
   per-sample gradients); with ``--equal-time`` also without DP for as long as the slowest DP run trained (its
   ``max_train_minutes``), the comparison at equal CPU time.
2. ``evaluate_pretraining.json`` with ``real_fractions [0.0]``: ResNet-18 classifiers (``--classifier-seeds``
   seeds) trained on ``--samples-per-class`` synthetic images per class only, epoch chosen on the real validation
   split, tested on the 624 real test images.
3. ``audit.json``: ``--num-samples`` generated images against the training split (held-out reference: val + test),
   with the expert of step 0 (``train_expert.json``, or ``--expert-ckpt``) for the feature measure.

It prints one table and writes ``dp_study.json`` / ``.md`` into ``--output-dir``; finished steps are reused.

Usage::

    python benchmarks/bench_dp_utility.py --output-dir /tmp/dp_study \
        --expert-ckpt /tmp/audit_study/expert/models/expert/best_model.pt
    python benchmarks/bench_dp_utility.py --output-dir /tmp/dp_equal_time --epsilons 8 0 --epochs 4 --equal-time \
        --samples-per-class 300 --num-samples 200 --expert-ckpt /tmp/samplers/expert/models/expert/best_model.pt
    python benchmarks/bench_dp_utility.py --quick --output-dir /tmp/dp_quick   # pipeline check

The data are PneumoniaMNIST of ``../shared/data`` (``--dataset-dir`` for another copy).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import markdown_table, output_folder, run_bundle, shared_data

BUNDLE = "cxr_cfg"
NPZ = "pneumoniamnist/pneumoniamnist.npz"
CLASS_NAMES = ["normal", "pneumonia"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/dp_study"))
    parser.add_argument("--dataset-dir", default=None, help="PneumoniaMNIST .npz (default: the shared copy)")
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 8.0, 0.0], help="0 = no DP (infinity)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples-per-class", type=int, default=500)
    parser.add_argument("--classifier-seeds", type=int, default=5)
    parser.add_argument("--num-samples", type=int, default=400, help="images audited")
    parser.add_argument("--equal-time", action="store_true",
                        help="also train a model without DP for as long as the slowest DP run trained (equal CPU "
                        "time instead of equal epochs)")  # fmt: skip
    parser.add_argument("--expert-ckpt", type=Path, default=None, help="expert for the audit (default: train one)")
    parser.add_argument("--quick", action="store_true", help="tiny run to check the pipeline (figures meaningless)")
    args = parser.parse_args()
    data = shared_data(args.dataset_dir, NPZ)
    out, log = output_folder(args.output_dir)
    epochs, per_class, seeds, audited = args.epochs, args.samples_per_class, args.classifier_seeds, args.num_samples
    quick: dict[str, Any] = {}
    if args.quick:
        epochs, per_class, seeds, audited = 1, 20, 1, 32
        quick = {"num_inference_steps": 10}
    common = {"dataset_dir": data, "class_names": CLASS_NAMES, "device": "cpu", **quick}
    times: dict[str, float] = {}
    expert = args.expert_ckpt
    if expert is None:
        expert = out / "expert" / "models" / "expert" / "best_model.pt"
        if not expert.is_file():
            times["expert"] = run_bundle(BUNDLE, "train_expert", log, output_dir=out / "expert",
                                         max_epochs=1 if args.quick else 10, **common)  # fmt: skip

    def train_minutes(run: Path) -> float:
        with open(run / "train_log.csv") as f:
            return sum(float(line.split(",")[4]) for line in f.read().splitlines()[1:]) / 60

    runs: list[tuple[str, str, Path]] = []
    for eps in args.epsilons:
        name = f"eps_{eps:g}" if eps > 0 else "no_dp"
        label = "no DP (epsilon = inf)" if eps <= 0 else f"DP-SGD epsilon = {eps:g}"
        run = out / name
        if not (run / "models" / "model.pt").is_file():
            times[f"train_{name}"] = run_bundle(BUNDLE, "train", log, output_dir=run, max_epochs=epochs,
                                                sample_interval=0, dp_epsilon=eps if eps > 0 else None,
                                                **common)  # fmt: skip
        runs.append((name, label, run))
    if args.equal_time:
        budget = max((train_minutes(run) for name, _, run in runs if name != "no_dp"), default=0.0)
        if budget <= 0:
            parser.error("--equal-time needs at least one DP run (an epsilon > 0 in --epsilons)")
        run = out / "no_dp_equal_time"
        if not (run / "models" / "model.pt").is_file():
            times["train_no_dp_equal_time"] = run_bundle(BUNDLE, "train", log, output_dir=run, max_epochs=1000,
                                                         max_train_minutes=budget, sample_interval=0,
                                                         **common)  # fmt: skip
        runs.append(("no_dp_equal_time", f"no DP, same time ({budget:.1f} min)", run))
    rows = []
    for name, label, run in runs:
        pre = run / "eval" / "pretraining" / "pretraining.json"
        if not pre.is_file():
            times[f"classifiers_{name}"] = run_bundle(BUNDLE, "evaluate_pretraining", log, output_dir=run,
                                                      real_fractions=[0.0], samples_per_class=per_class,
                                                      num_seeds=seeds, **common)  # fmt: skip
        audit = run / "eval" / "audit" / "audit.json"
        if not audit.is_file():
            times[f"audit_{name}"] = run_bundle(BUNDLE, "audit", log, output_dir=run, expert_ckpt=expert,
                                                num_samples=audited, **common)  # fmt: skip
        metrics = json.loads(pre.read_text())["metrics"]
        audit_result = json.loads(audit.read_text())
        info = json.loads((run / "models" / "model_info.json").read_text()).get("differential_privacy") or {}
        with open(run / "train_log.csv") as f:
            trained_epochs = f.read().splitlines()[-1].split(",")[0]
        rows.append({
            "model": label, "epochs": trained_epochs,
            "epsilon_spent": info.get("epsilon_spent"), "delta": info.get("delta"),
            "noise_multiplier": info.get("noise_multiplier"), "train_minutes": train_minutes(run),
            "acc_synthetic_only": metrics["accuracy_synthetic_only_mean"],
            "acc_std": metrics["accuracy_synthetic_only_std"],
            "bal_acc": metrics["balanced_accuracy_synthetic_only_mean"],
            "auc": metrics["roc_auc_synthetic_only_mean"],
            "memorisation_rate": audit_result["memorisation_rate"],
            "flagged_pixel": audit_result["flagged_by_measure"]["pixel"],
            "flagged_feature": audit_result["flagged_by_measure"].get("feature"),
        })  # fmt: skip

    header = list(rows[0])

    table = markdown_table(rows, header)
    print(table)
    (out / "dp_study.md").write_text(table + "\n")
    settings = {**vars(args), "output_dir": str(out), "dataset_dir": str(data), "epochs": epochs,
                "samples_per_class": per_class, "classifier_seeds": seeds, "expert_ckpt": str(expert),
                "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    (out / "dp_study.json").write_text(json.dumps({"settings": settings, "rows": rows, "seconds": times}, indent=2))


if __name__ == "__main__":
    main()
