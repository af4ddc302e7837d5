"""benchmarks/bench_cxr_utility.py: the table lines it prints from the utility reports."""

from __future__ import annotations

import json

from tests.benchmarks._load import BENCHMARKS, load_benchmark

bench = load_benchmark("bench_cxr_utility")


def _stats(mean, std):
    return {"mean": mean, "std": std}


def test_summary_rows_one_line_per_row_and_setting():
    report = {"summary": {
        "real_only": {"aug_weighted": {"num_real": 10, "num_synthetic": 0, "accuracy": _stats(0.8834, 0.0191),
                                       "balanced_accuracy": _stats(None, None), "roc_auc": _stats(0.95, 0.0),
                                       "f1_macro": _stats(0.5, 0.1)}},
        "synthetic_only": {s: {"num_real": 0, "num_synthetic": 20, **{m: _stats(0.7, 0.01) for m in bench.METRICS}}
                           for s in ("noaug_unweighted", "aug_weighted")},
    }}  # fmt: skip
    rows = bench.summary_rows(report, "table")
    assert [(r["training"], r["setting"]) for r in rows] == [
        ("real_only", "aug_weighted"), ("synthetic_only", "noaug_unweighted"), ("synthetic_only", "aug_weighted")
    ]  # fmt: skip
    first = rows[0]
    assert first["accuracy"] == "0.883 ± 0.019" and first["balanced_accuracy"] == "n/a"
    assert (first["run"], first["real"], first["synthetic"]) == ("table", 10, 0)
    assert rows[2]["roc_auc"] == "0.700 ± 0.010"


def test_overrides_are_config_keys():
    """Every key the script overrides exists in the bundle's train.json or evaluate_utility.json."""
    configs = BENCHMARKS.parent / "bundles" / "cxr_cfg" / "configs"
    keys = set(json.loads((configs / "train.json").read_text())) | set(
        json.loads((configs / "evaluate_utility.json").read_text())
    )
    source = (BENCHMARKS / "bench_cxr_utility.py").read_text()
    overridden = ("max_train_minutes", "sample_interval", "eval_dir", "ckpt_path", "expert_ckpt", "num_seeds",
                  "pretrain_epochs", "finetune_epochs", "augment_options", "class_weighted_options", "subset_epochs",
                  "real_fractions", "samples_per_class", "filter_confidence", "num_inference_steps",
                  "ssim_pairs", "guidance_scale")  # fmt: skip
    for key in overridden:
        assert f"{key}=" in source or f'"{key}"' in source, key
        assert key in keys, key
