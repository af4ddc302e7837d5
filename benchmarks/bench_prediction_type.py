"""Epsilon- vs v-prediction for the ct_lightweight bundle at the same CPU budget, side by side in one run.

Trains the bundle's real ``train.json`` twice on the same data with the same seed and number of iterations, once
with ``prediction_type=epsilon`` (the DDPM default) and once with ``v_prediction`` (the bundle default), samples the
same noise with DDIM-50 from each EMA model, and compares the samples with the training slices:

- background: mean value of the image border (air; the data have -1 there);
- image mean / std: global intensity statistics of the samples vs the data;
- histogram L1: L1 distance between the intensity histograms (64 bins over [-1, 1]) of samples and data (0 = same).

Usage::

    python benchmarks/bench_prediction_type.py                       # demo data, 32 px, 60 epochs each
    python benchmarks/bench_prediction_type.py --image-size 64 --epochs 100 --dataset-dir data/ct_demo
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run
from monai.networks.schedulers import DDIMScheduler

from medsyn_monai.apps.demo import create_demo
from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.networks.nets import LightweightDiffusionUNet

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "bundles" / "ct_lightweight" / "configs" / "train.json"


def _stats(x: torch.Tensor, border: int) -> dict[str, float]:
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[..., border:-border, border:-border] = False
    return {"background": x[mask].mean().item(), "mean": x.mean().item(), "std": x.std().item()}


def _hist(x: torch.Tensor) -> torch.Tensor:
    h = torch.histc(x.clamp(-1, 1).float(), bins=64, min=-1, max=1)
    return h / h.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-dir", default=None, help="default: a fresh copy of the CT demo data")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--num-samples", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_pred_"))
    dataset_dir = args.dataset_dir or str(create_demo("ct", work / "demo"))

    cfg = ConfigParser()
    cfg.read_config(str(TRAIN))
    cfg.update({"dataset_dir": dataset_dir, "output_dir": str(work / "data_probe"), "image_size": args.image_size})
    data = cfg.get_parsed_content("train#dataset").images
    border = max(1, args.image_size // 16)
    rows = [{"model": "training data", "iterations": "", "train_s": "", **_stats(data, border), "hist_l1": 0.0}]
    for pred in ("epsilon", "v_prediction"):
        out = work / pred
        t0 = time.perf_counter()
        bundle_run(config_file=str(TRAIN), dataset_dir=dataset_dir, output_dir=str(out), max_epochs=args.epochs,
                   image_size=args.image_size, prediction_type=pred, sample_interval=0, seed=args.seed)  # fmt: skip
        seconds = time.perf_counter() - t0
        info = json.loads((out / "models" / "model_info.json").read_text())
        net = LightweightDiffusionUNet(channels=info["channels"], num_class_embeds=info["num_classes"])
        net.load_state_dict(torch.load(out / "models" / "model.pt"))
        sched = DDIMScheduler(info["num_train_timesteps"], schedule=info["beta_schedule"], prediction_type=pred)
        sched.set_timesteps(50)
        g = torch.Generator().manual_seed(args.seed)
        noise = torch.randn(args.num_samples, 1, args.image_size, args.image_size, generator=g)
        labels = torch.arange(args.num_samples) % info["num_classes"] if info["num_classes"] else None
        samples = ConditionalDiffusionInferer(sched).sample(noise, net.eval(), verbose=False, class_labels=labels)
        iterations = torch.load(out / "models" / "checkpoint.pt", weights_only=False)["trainer"]["iteration"]
        hist_l1 = (_hist(samples) - _hist(data)).abs().sum().item()
        rows.append({"model": pred, "iterations": iterations, "train_s": f"{seconds:.0f}", **_stats(samples, border),
                     "hist_l1": hist_l1})  # fmt: skip

    print(f"\n# ct_lightweight, {args.image_size} px, {args.epochs} epochs, DDIM-50, {args.num_samples} samples\n")
    print("| model | iterations | train s | background (data -1) | image mean | image std | histogram L1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['iterations']} | {r['train_s']} | {r['background']:.3f} | {r['mean']:.3f} | "
              f"{r['std']:.3f} | {r['hist_l1']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
