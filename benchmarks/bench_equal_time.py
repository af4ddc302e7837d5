"""Quality after the same wall time: the plain MONAI tutorial loop against the project's default trainer.

Both train on the ``ct_lightweight`` demo slices (training split) at ``--image-size`` px for ``--minutes`` of wall
time each, on this machine alone (all threads), one after the other:

1. **MONAI tutorial loop**: the MONAI 2D DDPM tutorial's network (``DiffusionModelUNet`` (128, 256, 256), attention
   (F, T, T), unconditional, ε-prediction, linear schedule), Adam 2.5e-5, ``DataLoader`` + MONAI
   ``DiffusionInferer``, fp32, eager — the tutorial's structure (the images come already preprocessed by the
   bundle's pipeline, so the loop pays no decoding).
2. **Project default**: ``ct_lightweight/configs/train.json`` unchanged (lightweight U-Net, bf16 where the CPU has
   it, v-prediction, EMA, validation, logging, checkpoints) with ``max_train_minutes``, and ``max_epochs`` sized as a
   user would, so that its learning-rate schedule ends at the budget at ``--expected-rate`` images/s.

The clock of each starts at its first iteration (data set-up excluded for both). Each model then draws
``--num-samples`` images per sampling seed with the same sampler (the project's default, DPM-Solver++ 2M SDE, 20
model evaluations; the tutorial's own DDPM-1000 would take ~50x longer for the tutorial network); the tutorial model
is unconditional, the project's model draws its classes in turn. Domain-FID against the real validation and test
slices in the feature space of the bundle's expert (``train_expert.json``, trained once on the training split).

It prints one table (loop, minutes, images seen, images/s, val and test FID mean ± std over seeds) and writes
``equal_time.json`` / ``equal_time.md`` into ``--output-dir``; runs already finished there are reused.

Usage::

    python benchmarks/bench_equal_time.py --output-dir /tmp/equal_time                 # about 35 min on 2 cores
    python benchmarks/bench_equal_time.py --output-dir /tmp/equal_time_q --quick      # pipeline check, 3 min
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import config_files, machine_summary, markdown_table, output_folder, run_bundle
from bench_throughput import build, demo_images, tutorial_training

BUNDLE = "ct_lightweight"
SPLITS = ("val", "test")


def train_tutorial(images: torch.Tensor, batch: int, minutes: float) -> tuple[torch.nn.Module, dict[str, float]]:
    """The MONAI 2D DDPM tutorial's training loop for ``minutes`` of wall time (clock from the first iteration)."""
    model, loader, step = tutorial_training(images, batch)
    seen, loss, start = 0, float("nan"), time.perf_counter()
    while time.perf_counter() - start < 60 * minutes:
        for data in loader:
            im = data["image"]
            loss = step(im)
            seen += im.shape[0]
            if time.perf_counter() - start >= 60 * minutes:
                break
    seconds = time.perf_counter() - start
    model.eval()
    return model, {"seconds": seconds, "images_seen": seen, "final_loss": loss}


def sample_tutorial(model: torch.nn.Module, num: int, size: int, seed: int, bf16: bool) -> torch.Tensor:
    """``num`` images from the unconditional tutorial model with the project's default sampler."""
    from medsyn_monai.inferers import ConditionalDiffusionInferer
    from medsyn_monai.networks.schedulers import sampling_scheduler
    from medsyn_monai.networks.schedulers.factory import DEFAULT_NUM_INFERENCE_STEPS, DEFAULT_SCHEDULER_TYPE

    scheduler = sampling_scheduler(DEFAULT_SCHEDULER_TYPE, 1000, "linear_beta", "epsilon")
    scheduler.set_timesteps(DEFAULT_NUM_INFERENCE_STEPS)
    inferer = ConditionalDiffusionInferer(scheduler, cpu_bf16=bf16)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(num, 1, size, size, generator=generator)
    with torch.no_grad():
        images = inferer.sample(noise, model, scheduler, verbose=False, generator=generator)
    assert isinstance(images, torch.Tensor)
    return images.clamp(-1, 1)


def real_images(run_dir: Path, data_dir: Path, split: str) -> torch.Tensor:
    """The real slices of ``split`` as the bundle's ``evaluate.json`` reads them."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(config_files(BUNDLE, "evaluate"))
    parser.update({"output_dir": str(run_dir), "dataset_dir": str(data_dir), "demo_dir": str(data_dir),
                   "reference_split": split})  # fmt: skip
    return parser.get_parsed_content("real").images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/equal_time"))
    parser.add_argument("--minutes", type=float, default=10.0, help="wall time of each training loop")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--expert-epochs", type=int, default=8)
    parser.add_argument("--expected-rate", type=float, default=100.0,
                        help="images/s the default trainer should reach (sizes its epochs to the budget)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=200, help="images per sampling seed")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the pipeline")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.expert_epochs, args.seeds, args.num_samples = 0.3, 1, 1, 16

    from medsyn_monai.apps.generation import DiffusionSampler
    from medsyn_monai.metrics.fid import frechet_distance
    from medsyn_monai.networks.nets import FeatureExtractor
    from medsyn_monai.utils.precision import resolve_cpu_bf16

    bf16 = resolve_cpu_bf16("auto")
    out, log = output_folder(args.output_dir)
    data = out / "ct_demo"
    size = args.image_size
    common = {"dataset_dir": data, "demo_dir": data, "image_size": size, "device": "cpu"}
    expert = out / "expert" / "models" / "expert" / "best_model.pt"
    if not expert.is_file():
        run_bundle(BUNDLE, "train_expert", log, output_dir=out / "expert", max_epochs=args.expert_epochs,
                   sample_interval=0, **common)  # fmt: skip
    images = demo_images(size, data)  # the training split, as the bundle's pipeline reads it
    default_dir = out / "default"
    if not (default_dir / "models" / "model.pt").is_file():
        # as a user would: epochs for the budget at the expected speed, so that the learning-rate schedule ends there
        epochs = max(1, math.ceil(60 * args.minutes * args.expected_rate / len(images)))
        run_bundle(BUNDLE, "train", log, output_dir=default_dir, max_epochs=epochs, max_train_minutes=args.minutes,
                   batch_size=args.batch_size, sample_interval=0, **common)  # fmt: skip
    tutorial_ckpt = out / "tutorial" / "model.pt"
    if not tutorial_ckpt.is_file():
        torch.manual_seed(0)
        model, stats = train_tutorial(images, args.batch_size, args.minutes)
        tutorial_ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": model.state_dict(), "stats": stats}, tutorial_ckpt)
    saved = torch.load(tutorial_ckpt, weights_only=True)
    tutorial = build("tutorial")
    tutorial.load_state_dict(saved["state_dict"])
    tutorial.eval()

    with open(default_dir / "train_log.csv") as f:
        last = list(csv.DictReader(f))[-1]  # the last (possibly partial) epoch: iterations so far, its mean loss
    default_stats = {"seconds": 60 * args.minutes, "images_seen": int(last["iteration"]) * args.batch_size,
                     "final_loss": float(last["mean_loss"])}  # fmt: skip
    extractor = FeatureExtractor.from_expert_checkpoint(expert)
    real = {split: extractor.extract(real_images(default_dir, data, split)) for split in SPLITS}

    def fids(draw: Any) -> dict[str, Any]:
        values: dict[str, list[float]] = {split: [] for split in SPLITS}
        seconds = 0.0
        for seed in range(args.seeds):
            start = time.perf_counter()
            images = draw(seed)
            seconds += time.perf_counter() - start
            features = extractor.extract(images)
            for split in SPLITS:
                values[split].append(frechet_distance(real[split], features))
        return {"fids": values, "ms_per_image": 1000 * seconds / (args.seeds * args.num_samples)}

    def draw_default(seed: int) -> torch.Tensor:
        sampler = DiffusionSampler.from_checkpoint(default_dir / "models" / "model.pt", num_samples=args.num_samples,
                                                   seed=seed, device="cpu", verbose=False, save_png=False,
                                                   batch_size=100, cpu_bf16=bf16)  # fmt: skip
        sampler.load_weights()
        return sampler.generate(num_samples=args.num_samples, seed=seed)[0]

    def draw_tutorial(seed: int) -> torch.Tensor:
        return torch.cat([sample_tutorial(tutorial, min(100, args.num_samples - i), size, seed * 1000 + i, bf16)
                          for i in range(0, args.num_samples, 100)])  # fmt: skip

    rows: list[dict[str, Any]] = []
    for name, stats, draw in (
        ("MONAI tutorial loop (tutorial network, fp32, eager)", saved["stats"], draw_tutorial),
        ("project default (ct_lightweight train.json)", default_stats, draw_default),
    ):
        row: dict[str, Any] = {"loop": name, "minutes": stats["seconds"] / 60, "images seen": stats["images_seen"],
                               "final loss": stats["final_loss"], **fids(draw)}  # fmt: skip
        row["img/s"] = stats["images_seen"] / stats["seconds"] if stats["images_seen"] else float("nan")
        for split in SPLITS:
            v = row["fids"][split]
            row[f"fid_{split}_mean"], row[f"fid_{split}_std"] = float(np.mean(v)), float(np.std(v))
            row[f"{split} FID"] = f"{np.mean(v):.1f} ± {np.std(v):.1f}"
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "fids"}, default=str), flush=True)
    md = markdown_table(rows, ["loop", "minutes", "images seen", "img/s", "final loss", "val FID", "test FID",
                               "ms_per_image"], ".3g")  # fmt: skip
    setting = (f"{size} px, batch {args.batch_size}, {args.minutes:g} min each; sampled with the default sampler, "
               f"{args.seeds} seeds x {args.num_samples} images; sampling {'bf16' if bf16 else 'fp32'}")  # fmt: skip
    text = f"{machine_summary()}; {setting}\n\n{md}\n"
    (out / "equal_time.md").write_text(text)
    (out / "equal_time.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                     "rows": rows}, indent=1, default=str))  # fmt: skip
    print("\n" + text)


if __name__ == "__main__":
    main()
