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
    python benchmarks/bench_prediction_type.py --epochs 1 --image-size 16 --num-samples 4 --output-dir /tmp/pred

Each training run's log is ``<output-dir>/train.log``; the models are ``<output-dir>/<prediction type>/models``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from _common import config_files, run_bundle
from monai.bundle import ConfigParser

from medsyn_monai.apps.demo import create_demo
from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.networks.nets import network_from_config
from medsyn_monai.networks.schedulers import sampling_scheduler
from medsyn_monai.utils import load_model_info

BUNDLE = "ct_lightweight"


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
    parser.add_argument("--output-dir", type=Path, default=None, help="default: a new temporary folder")
    args = parser.parse_args()
    work = args.output_dir.resolve() if args.output_dir else Path(tempfile.mkdtemp(prefix="bench_pred_"))
    work.mkdir(parents=True, exist_ok=True)
    dataset_dir = args.dataset_dir or str(create_demo("ct", work / "demo"))

    cfg = ConfigParser()
    cfg.read_config(config_files(BUNDLE, "train"))
    cfg.update({"dataset_dir": dataset_dir, "output_dir": str(work / "data_probe"), "image_size": args.image_size})
    data = cfg.get_parsed_content("train#dataset").images
    border = max(1, args.image_size // 16)
    rows = [{"model": "training data", "iterations": "", "train_s": "", **_stats(data, border), "hist_l1": 0.0}]
    for pred in ("epsilon", "v_prediction"):
        out = work / pred
        seconds = run_bundle(BUNDLE, "train", work / "train.log", dataset_dir=dataset_dir, output_dir=out,
                             max_epochs=args.epochs, image_size=args.image_size, prediction_type=pred,
                             sample_interval=0, seed=args.seed)  # fmt: skip
        info = load_model_info(out / "models")  # the network's arguments and the noise schedule of the run
        net = network_from_config(info["network"])
        net.load_state_dict(torch.load(out / "models" / "model.pt", weights_only=True))
        sched = sampling_scheduler("ddim", **info["scheduler"])
        sched.set_timesteps(50)
        g = torch.Generator().manual_seed(args.seed)
        noise = torch.randn(args.num_samples, 1, args.image_size, args.image_size, generator=g)
        labels = torch.arange(args.num_samples) % info["num_classes"] if info["num_classes"] else None
        samples = ConditionalDiffusionInferer(sched).sample(noise, net.eval(), verbose=False, class_labels=labels)
        iterations = torch.load(out / "models" / "checkpoint.pt", weights_only=True)["trainer"]["iteration"]
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
