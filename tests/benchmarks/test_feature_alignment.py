"""benchmarks/bench_feature_alignment.py: the conditions it trains and its summary over training seeds."""

from __future__ import annotations

import csv
import json

import pytest

from tests.benchmarks._load import BENCHMARKS, load_benchmark

bench = load_benchmark("bench_feature_alignment")


def _row(cond, seed, epoch, acc, fid=100.0, judge="eval"):
    return {"condition": cond, "train_seed": seed, "epoch": epoch, "iterations": epoch * 75, "judge": judge,
            "generation_accuracy_mean": acc, "generation_accuracy_std": 0.02, "ssim_intra_synthetic": 0.1,
            "ssim_intra_real": 0.2, "fid": fid, "kid_mean": 1.0, "precision": 0.5, "recall": 0.5,
            "train_s_total": 60.0}  # fmt: skip


def test_conditions_are_train_json_keys():
    train = json.loads((BENCHMARKS.parent / "bundles" / "histo_feature_aligned" / "configs" / "train.json").read_text())
    for name, overrides in bench.CONDITIONS.items():
        assert set(overrides) <= set(train), (name, set(overrides) - set(train))
    assert set(bench.DEFAULT_CONDITIONS) <= set(bench.CONDITIONS) and bench.DEFAULT_CONDITIONS[0] == "baseline"
    assert bench.CONDITIONS["aligned_spatial_haste"]["alignment_stop_fraction"] == 0.4


def test_summary_over_training_seeds_and_goal_check():
    rows = [_row("baseline", 0, 10, 0.40), _row("baseline", 1, 10, 0.50), _row("baseline", 0, 20, 0.60),
            _row("baseline", 1, 20, 0.60, fid=80.0), _row("baseline", 0, 20, 0.9, judge="align"),
            _row("better", 0, 10, 0.60), _row("better", 1, 10, 0.62), _row("better", 0, 20, 0.70),
            _row("better", 1, 20, 0.66), _row("same", 0, 10, 0.5), _row("same", 1, 10, 0.5),
            _row("same", 0, 20, 0.61), _row("same", 1, 20, 0.61)]  # fmt: skip
    summary = bench.summarise(rows, ["baseline", "better", "same"], [10, 20])
    base = summary["baseline"]["10"]["generation_accuracy_mean"]
    assert base["mean"] == pytest.approx(0.45) and base["std"] == pytest.approx(0.05)
    assert summary["baseline"]["20"]["fid"]["mean"] == pytest.approx(90.0)  # the alignment-expert row is left out
    assert summary["baseline"]["20"]["train_seeds"] == 2
    goals = bench.goal_lines(summary, [10, 20])
    # better: +8 points at the end and the baseline's final 0.60 already at epoch 10 (half the iterations)
    assert "- better: +8.0 points at epoch 20; baseline's final accuracy reached at epoch 10 — goal met" in goals
    assert "- same: +1.0 points at epoch 20; baseline's final accuracy reached at epoch 20 — goal not met" in goals
    assert "| better | 10 | 750 | 0.610 ± 0.010 |" in bench.summary_table(summary)


def test_alignment_curve_reads_the_training_log(tmp_path):
    fields = ["epoch", "iteration", "mean_loss", "epoch_seconds", "mean_loss_noise", "mean_loss_align",
              "mean_loss_align_shuffled", "mean_align_proj_std", "mean_align_target_std"]  # fmt: skip
    with open(tmp_path / "train_log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for epoch, align in ((1, 0.16), (2, 0.002), (3, "")):  # alignment switched off in epoch 3 (HASTE)
            writer.writerow({"epoch": epoch, "iteration": 75 * epoch, "mean_loss": 0.1, "epoch_seconds": 10,
                             "mean_loss_noise": 0.1, "mean_loss_align": align, "mean_loss_align_shuffled": 0.3,
                             "mean_align_proj_std": 0.5 / epoch,
                             "mean_align_target_std": 1.0})  # fmt: skip
    curve = bench.alignment_curve(tmp_path, "aligned", 0)
    assert [c["loss_align"] for c in curve[:2]] == [0.16, 0.002] and curve[2]["loss_align"] != curve[2]["loss_align"]
    assert curve[1]["align_proj_std"] == pytest.approx(0.25) and curve[0]["loss_align_shuffled"] == 0.3
    table = bench.curve_table(curve)
    assert "| aligned | 0 | 2 | 0.002 | 0.3 | 0.25 | 1 |" in table and "| aligned | 0 | 3 | off |" in table
    with open(tmp_path / "train_log.csv", "w", newline="") as f:  # a baseline run has no alignment columns
        csv.writer(f).writerows([["epoch", "iteration", "mean_loss"], [1, 75, 0.1]])
    assert bench.alignment_curve(tmp_path, "baseline", 0) == []
