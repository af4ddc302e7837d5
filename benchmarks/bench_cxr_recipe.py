"""The cxr_cfg default recipe vs a plain CFG-DDPM recipe at the same CPU budget, on PneumoniaMNIST, side by side.

Both recipes are the bundle's own ``train.json`` with overrides, trained for the same wall-clock budget
(``max_train_minutes``, default 25) on the same data, then scored the same way (every other config is an overlay,
run stacked on the bundle's ``train.json`` as in its docs):

1. ``train_expert.json``: a ResNet-18 on the real training split (features for FID/KID, expert accuracy).
2. ``train.json`` per recipe, stopped by the time budget (``max_epochs`` of each recipe is sized so that its
   learning-rate schedule ends close to the budget on this machine; ``--budget-minutes`` caps it).
3. The default recipe's guidance scale is chosen on ``val``: the candidate of ``--select-guidance-scales`` whose
   synthetic-only classifiers (step 5's protocol) reach the best validation accuracy; the plain recipe samples at its
   fixed w = 2.
4. ``evaluate.json`` on the ``test`` split at that w: FID/KID in the expert's features, SSIM diversity (also
   cross-set), impulse (salt-and-pepper) noise, expert accuracy on generated images, and a guidance sweep
   (``--guidance-scales``: expert generation accuracy and FID per w on identical noise).
5. ``evaluate_pretraining.json`` on the ``test`` split: ResNet-18 classifiers (3 seeds) trained on
   ``--samples-per-class`` synthetic images per class (DDIM-50; last epoch, no selection on real data) and tested
   on the real test images; for the default recipe also fine-tuned on 100 % / 10 % of the real data, beside
   classifiers trained on that real data alone. The synthetic-only score is then repeated with ``--confirm-seeds``
   (10) classifier seeds at the same w, for a mean tight enough to compare recipes (the spread over seeds is
   ±0.01–0.04).
6. A noise diagnosis: the same noise sampled with variants of the sampler (guidance, clipping of x0, number of steps,
   EMA or raw weights), scored by the impulse-noise rate against the real images' floor.

It prints the tables and writes ``recipe_study.json`` / ``.md`` into ``--output-dir``; finished steps are reused, so an
interrupted study continues (delete a step's output folder to redo it).

Usage::

    python benchmarks/bench_cxr_recipe.py --output-dir runs/cxr_recipe
    python benchmarks/bench_cxr_recipe.py --recipes default --budget-minutes 5     # a quicker look at one recipe
    python benchmarks/bench_cxr_recipe.py --quick --output-dir /tmp/cxr_recipe    # pipeline check, a few minutes

The data are PneumoniaMNIST of ``../shared/data`` (``--dataset-dir`` for another copy).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import torch
from _common import output_folder, run_bundle, shared_data

BUNDLE = "cxr_cfg"
NPZ = "pneumoniamnist/pneumoniamnist.npz"  # in ../shared/data
CLASS_NAMES = ["normal", "pneumonia"]

# The plain recipe of the issue: MONAI DiffusionModelUNet (32, 64, 64) with class embeddings, condition dropout 0.1,
# cosine schedule, epsilon prediction, AdamW 2e-4 (constant), EMA 0.999, batch 64, torch.compile, float32, DDIM-50
# at guidance 2. The default recipe is train.json without overrides.
RECIPES: dict[str, dict[str, Any]] = {
    "plain": {
        "train": {
            "prediction_type": "epsilon",
            "learning_rate": 2e-4,
            "warmup_steps": 0,
            "lr_end_factor": 1.0,
            "ema_decay": 0.999,
            "batch_size": 64,
            "cpu_bf16": False,
            "compile": True,
            "attention_levels": [False, True, True],
            "max_grad_norm": None,
            "max_epochs": 60,
        },
        "guidance_scale": 2.0,
    },
    "default": {"train": {"max_epochs": 70}, "guidance_scale": None},  # w chosen on val
    # candidate changes of the default recipe, tried one at a time (see the cxr_cfg docs)
    "default_ema999": {"train": {"max_epochs": 70, "ema_decay": 0.999, "ema_adaptive": True}, "guidance_scale": None},
}


def _train_summary(run_dir: Path) -> dict[str, Any]:
    rows = list(csv.DictReader(open(run_dir / "train_log.csv")))
    ckpt = torch.load(run_dir / "models" / "checkpoint.pt", map_location="cpu", weights_only=True)
    return {
        "epochs_logged": len(rows),
        "iterations": int(ckpt["trainer"]["iteration"]),
        "train_seconds": round(sum(float(r["epoch_seconds"]) for r in rows), 1),
        "final_mean_loss": float(rows[-1]["mean_loss"]) if rows else None,
        "images_per_second": round(sum(float(r["images_per_second"]) for r in rows[1:]) / max(1, len(rows) - 1), 1),
    }


def _diagnose(run_dir: Path, real_test: torch.Tensor, per_class: int, seed: int) -> list[dict[str, Any]]:
    """Impulse-noise rate of the same noise sampled with sampler variants (see the module docstring)."""
    from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

    from medsyn_monai.apps.generation import DiffusionSampler
    from medsyn_monai.inferers import ConditionalDiffusionInferer
    from medsyn_monai.metrics import impulse_noise_rate
    from medsyn_monai.networks.nets import network_from_config
    from medsyn_monai.utils import load_model_info

    class SkipFirstDDIM(DDIMScheduler):
        """DDIM without its first time step (t = T - 1): sampling starts one step lower."""

        def set_timesteps(self, num_inference_steps: int, device: Any = None) -> None:
            super().set_timesteps(num_inference_steps, device)
            self.timesteps = self.timesteps[1:]

    info = load_model_info(run_dir / "models")
    schedule = info["scheduler"]  # num_train_timesteps, schedule, prediction_type
    image_shape = (info["in_channels"], info["image_size"], info["image_size"])
    rows = [
        {
            "variant": "real test images (floor)",
            "impulse_noise": float(impulse_noise_rate(real_test).mean()),
            "fraction_at_limits": float((real_test.abs() > 0.99).float().mean()),
        }
    ]
    variants = [
        ("DDIM-50, w=2", "ema", DDIMScheduler(**schedule), 50, 2.0, per_class),
        ("DDIM-50, w=1 (no guidance)", "ema", DDIMScheduler(**schedule), 50, 1.0, per_class),
        ("DDIM-50, w=2, no x0 clipping", "ema", DDIMScheduler(**schedule, clip_sample=False), 50, 2.0, per_class),
        ("DDIM-50 without its first step (t=999), w=2", "ema", SkipFirstDDIM(**schedule), 50, 2.0, per_class),
        ("DDIM-200, w=2", "ema", DDIMScheduler(**schedule), 200, 2.0, per_class),
        ("DDIM-50, w=2, raw (non-EMA) weights", "network", DDIMScheduler(**schedule), 50, 2.0, per_class),
        ("DDPM-1000, w=2", "ema", DDPMScheduler(**schedule), None, 2.0, max(4, per_class // 4)),
    ]
    rows.append(_first_step_x0(run_dir, info, seed))
    for name, key, scheduler, steps, w, n in variants:
        inferer = ConditionalDiffusionInferer(scheduler, null_class_label=info["null_class_label"])
        sampler = DiffusionSampler(network_from_config(info["network"]), inferer, scheduler,
                                   run_dir / "models" / "checkpoint.pt", run_dir / "diagnosis", num_samples=2 * n,
                                   image_shape=image_shape, batch_size=128,
                                   num_inference_steps=steps, class_names=info["class_names"], guidance_scale=w,
                                   seed=seed, ckpt_key=key, save_png=False, save_nifti=False,
                                   verbose=False)  # fmt: skip
        sampler.load_weights()
        start = time.perf_counter()
        images, _ = sampler.generate(labels=[0] * n + [1] * n, seed=seed)
        seconds = time.perf_counter() - start
        rows.append({"variant": name, "num_images": 2 * n, "seconds": round(seconds, 1),
                     "impulse_noise": float(impulse_noise_rate(images).mean()),
                     "min": float(images.min()), "max": float(images.max()),
                     "fraction_at_limits": float((images.abs() > 0.99).float().mean())})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _first_step_x0(run_dir: Path, info: dict[str, Any], seed: int, n: int = 64) -> dict[str, Any]:
    """The scheduler's estimate of x0 at the first DDIM step (t = T - 1, pure noise, w = 2), before clipping."""
    from monai.networks.schedulers import DDIMScheduler

    from medsyn_monai.inferers import ConditionalDiffusionInferer
    from medsyn_monai.networks.nets import network_from_config

    network = network_from_config(info["network"]).eval()
    network.load_state_dict(torch.load(run_dir / "models" / "model.pt", map_location="cpu", weights_only=True))
    scheduler = DDIMScheduler(**info["scheduler"], clip_sample=False)
    inferer = ConditionalDiffusionInferer(scheduler, null_class_label=info["null_class_label"])
    size = info["image_size"]
    noise = torch.randn(n, info["in_channels"], size, size, generator=torch.Generator().manual_seed(seed))
    t = info["scheduler"]["num_train_timesteps"] - 1
    labels = torch.arange(n) % info["num_classes"]
    with torch.no_grad():
        out = inferer.guided_prediction(network, noise, torch.full((n,), t), None, labels, 2.0)
    scheduler.set_timesteps(50)
    _, x0 = scheduler.step(out, t, noise)
    ab = float(scheduler.alphas_cumprod[t])
    return {"variant": f"x0 estimate at t={t} (alpha_bar {ab:.1e}), w=2, before clipping",
            "impulse_noise": float("nan"), "fraction_at_limits": float((x0.abs() > 1).float().mean()),
            "min": float(x0.min()), "max": float(x0.max())}  # fmt: skip


def _real_test(npz: Path) -> torch.Tensor:
    import numpy as np

    with np.load(npz) as data:
        images = torch.from_numpy(data["test_images"].astype(np.float32))
    return (images / 127.5 - 1.0).unsqueeze(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset-dir", type=Path, default=None, help=f"PneumoniaMNIST .npz (default: {NPZ} "
                        "of ../shared/data)")  # fmt: skip
    parser.add_argument("--output-dir", type=Path, default=Path("runs/cxr_recipe"))
    parser.add_argument("--recipes", nargs="+", default=["plain", "default"], choices=sorted(RECIPES))
    parser.add_argument("--budget-minutes", type=float, default=25.0)
    parser.add_argument("--samples-per-class", type=int, default=500)
    parser.add_argument("--classifier-seeds", type=int, default=3)
    parser.add_argument("--guidance-scales", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0])
    parser.add_argument("--sweep-samples-per-class", type=int, default=100)
    parser.add_argument("--select-guidance-scales", type=float, nargs="+", default=[1.0, 2.0, 3.0],
                        help="the default recipe's candidate w (best synthetic-only accuracy on val)")  # fmt: skip
    parser.add_argument("--diagnosis-samples-per-class", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--confirm-seeds", type=int, default=10,
                        help="classifier seeds of a confirming synthetic-only run (0 = none)")  # fmt: skip
    parser.add_argument("--no-diagnosis", action="store_true", help="skip the sampler-variant noise diagnosis")
    parser.add_argument("--quick", action="store_true",
                        help="pipeline check only: tiny budgets, sample counts and no torch.compile")  # fmt: skip
    args = parser.parse_args()
    args.dataset_dir = shared_data(args.dataset_dir, NPZ)
    eval_sizes = {"num_samples": 400, "num_seeds": 3, "samples_per_class": 50}
    quick_train: dict[str, Any] = {}
    quick_classifier: dict[str, Any] = {}
    quick_expert: dict[str, Any] = {}
    if args.quick:
        args.samples_per_class, args.classifier_seeds, args.sweep_samples_per_class = 8, 1, 4
        args.diagnosis_samples_per_class, args.confirm_seeds = 4, min(args.confirm_seeds, 2)
        eval_sizes = {"num_samples": 16, "num_seeds": 1, "samples_per_class": 4}
        quick_train = {"max_epochs": 1, "compile": False}
        quick_classifier = {"pretrain_epochs": 1, "finetune_epochs": 1, "real_epochs": 1}
        quick_expert = {"max_epochs": 1}

    out, log = output_folder(args.output_dir, "study.log")
    data = {"dataset_dir": args.dataset_dir, "class_names": CLASS_NAMES, "seed": args.seed}
    expert_dir = out / "expert"
    expert_ckpt = expert_dir / "models" / "expert" / "best_model.pt"
    if not expert_ckpt.is_file():
        t = run_bundle(BUNDLE, "train_expert", log, **data, output_dir=expert_dir, **quick_expert)
        print(f"expert trained in {t:.0f} s", flush=True)
    expert_test = json.loads((expert_dir / "eval" / "expert" / "test_metrics.json").read_text())
    result: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()},
                              "expert_test_accuracy": expert_test["accuracy"], "recipes": {}}  # fmt: skip
    real_test = _real_test(args.dataset_dir)

    def pretraining(run_dir: Path, eval_dir: Path, w: float, seeds: int, fractions: list[float],
                    test_split: str = "test") -> dict[str, Any]:  # fmt: skip
        """evaluate_pretraining.json (last epoch, no selection on real data) into eval_dir, unless done; its metrics."""
        if not (eval_dir / "metrics.json").is_file():
            run_bundle(BUNDLE, "evaluate_pretraining", log, dataset_dir=data["dataset_dir"], output_dir=run_dir,
                       eval_dir=eval_dir, guidance_scale=w, samples_per_class=args.samples_per_class,
                       num_seeds=seeds, real_fractions=fractions, seed=args.seed, test_split=test_split,
                       select_on_val=False, **quick_classifier)  # fmt: skip
        return json.loads((eval_dir / "metrics.json").read_text())

    for name in args.recipes:
        recipe = RECIPES[name]
        run_dir = out / name
        r: dict[str, Any] = {"overrides": recipe["train"]}
        if not (run_dir / "models" / "model.pt").is_file():
            t = run_bundle(BUNDLE, "train", log, **data, output_dir=run_dir, sample_interval=0,
                           max_train_minutes=args.budget_minutes, **{**recipe["train"], **quick_train})  # fmt: skip
            print(f"{name}: training command took {t:.0f} s", flush=True)
        r["training"] = _train_summary(run_dir)
        print(name, json.dumps(r["training"]), flush=True)

        sweep: dict[float, dict[str, Any]] = {}
        w = recipe["guidance_scale"]
        if w is None:  # the guidance scale whose synthetic-only classifiers score best on the real val split
            for scale in args.select_guidance_scales:
                sel_dir = run_dir / "eval" / f"select_w{scale:g}"
                m = pretraining(run_dir, sel_dir, scale, args.classifier_seeds, [0.0], test_split="val")
                sweep.setdefault(scale, {})["val_synthetic_only_accuracy"] = m["accuracy_synthetic_only_mean"]
            w = max(args.select_guidance_scales, key=lambda s: sweep[s]["val_synthetic_only_accuracy"])
        r |= {"guidance_scale": w, "val_sweep": sweep}

        test_dir = run_dir / "eval" / "test"  # the final figures (FID, SSIM, noise, guidance sweep) on test
        if not (test_dir / "metrics.json").is_file():
            run_bundle(BUNDLE, "evaluate", log, dataset_dir=data["dataset_dir"], output_dir=run_dir,
                       expert_ckpt=expert_ckpt, eval_dir=test_dir, reference_split="test", guidance_scale=w,
                       **eval_sizes, guidance_scales=args.guidance_scales,
                       sweep_samples_per_class=args.sweep_samples_per_class, ood_dir=out / "cells_demo",
                       ood_demo_dir=out / "cells_demo", seed=args.seed)  # fmt: skip
        test = json.loads((test_dir / "metrics.json").read_text())
        r["test_sweep"] = {w_: {"fid": test.get(f"fid_w{w_:g}"), "generation_accuracy":
                                test.get(f"generation_accuracy_w{w_:g}")} for w_ in args.guidance_scales}  # fmt: skip
        keys = ("fid", "kid_mean", "precision", "recall", "ssim_intra_synthetic", "ssim_intra_real",
                "impulse_noise_synthetic", "impulse_noise_real", "expert_accuracy_real", "expert_accuracy_synthetic",
                "generation_accuracy_mean", "generation_accuracy_std")  # fmt: skip
        r["test"] = {k: test.get(k) for k in keys} | {
            k: v for k, v in test.items() if k.startswith(("ssim_cross_", "fid_")) and "_w" not in k
        }

        fractions = [1.0, 0.1, 0.0] if name == "default" else [0.0]
        r["pretraining"] = pretraining(run_dir, run_dir / "eval" / "pretraining", w, args.classifier_seeds, fractions)
        r["confirm"] = None
        if args.confirm_seeds > 0:  # the synthetic-only score again with more classifier seeds (a tighter mean)
            confirm_dir = run_dir / "eval" / f"pretraining_{args.confirm_seeds}seeds"
            r["confirm"] = pretraining(run_dir, confirm_dir, w, args.confirm_seeds, [0.0])
        diag = run_dir / "eval" / "diagnosis.json"
        if not diag.is_file() and not args.no_diagnosis:
            diag.write_text(json.dumps(_diagnose(run_dir, real_test, args.diagnosis_samples_per_class, args.seed)))
        r["diagnosis"] = json.loads(diag.read_text()) if diag.is_file() else []
        result["recipes"][name] = r
        print(f"{name}: synthetic-only ResNet-18 test accuracy "
              f"{r['pretraining']['accuracy_synthetic_only_mean']:.3f} ± "
              f"{r['pretraining']['accuracy_synthetic_only_std']:.3f}", flush=True)  # fmt: skip

    lines = [f"Expert (ResNet-18, real training split) test accuracy: {result['expert_test_accuracy']:.3f}", "",
             "| recipe | iterations | train s | img/s | w | test FID | test gen. acc. | impulse noise (real floor) | "
             f"synthetic-only ResNet-18 test ACC ({args.classifier_seeds} seeds) | same, {args.confirm_seeds} seeds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, r in result["recipes"].items():
        t, v, p = r["training"], r["test"], r["pretraining"]
        lines.append(
            f"| {name} | {t['iterations']} | {t['train_seconds']:.0f} | {t['images_per_second']:.0f} | "
            f"{r['guidance_scale']:g} | {v['fid']:.1f} | {v['generation_accuracy_mean']:.3f} | "
            f"{v['impulse_noise_synthetic']:.4f} ({v['impulse_noise_real']:.4f}) | "
            f"{p['accuracy_synthetic_only_mean']:.3f} ± {p['accuracy_synthetic_only_std']:.3f} | "
            + (
                f"{c['accuracy_synthetic_only_mean']:.3f} ± {c['accuracy_synthetic_only_std']:.3f} |"
                if (c := r["confirm"])
                else " |"
            )
        )
    for name, r in result["recipes"].items():
        lines += ["", f"Guidance sweep, {name} (FID and expert generation accuracy on test; selection on val):", ""]
        lines += [
            "| w | test FID | test generation accuracy | synthetic-only ResNet-18 val ACC |",
            "|---:|---:|---:|---:|",
        ]
        for w, s in sorted(r["test_sweep"].items()):
            acc = r["val_sweep"].get(w, {}).get("val_synthetic_only_accuracy")
            fid, gen = s.get("fid"), s.get("generation_accuracy")
            cells = ["" if v is None else f"{v:{fmt}}" for v, fmt in ((fid, ".1f"), (gen, ".3f"), (acc, ".3f"))]
            lines.append(f"| {w:g} | " + " | ".join(cells) + " |")
        lines += ["", f"Noise diagnosis, {name}:", ""]
        lines += ["| sampler | images | impulse noise | pixels at ±1 (x0: outside) | s |", "|---|---:|---:|---:|---:|"]
        for d in r["diagnosis"]:
            lines.append(f"| {d['variant']} | {d.get('num_images', '')} | {d['impulse_noise']:.4f} | "
                         f"{d.get('fraction_at_limits', float('nan')):.4f} | {d.get('seconds', '')} |")  # fmt: skip
        p = r["pretraining"]
        rows = sorted({k[9:-5] for k in p if k.startswith("accuracy_") and k.endswith("_mean")})
        lines += ["", f"Classifiers on test, {name} (mean ± std over seeds):", ""]
        lines += ["| training | accuracy |", "|---|---:|"]
        lines += [f"| {row} | {p[f'accuracy_{row}_mean']:.3f} ± {p[f'accuracy_{row}_std']:.3f} |" for row in rows]
    table = "\n".join(lines)
    print(table)
    (out / "recipe_study.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "recipe_study.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
