"""Samplers against model evaluations: domain-FID of DDIM, DPM-Solver++ (2M, 3M) and UniPC at 5-100 model
evaluations (NFE) against DDPM with all 1000 steps, on a class-conditional model of ``cxr_cfg`` trained on
PneumoniaMNIST, with classifier-free guidance.

Steps (every config runs as in the bundle's docs; reused when its output exists — delete a folder to redo it):

1. ``train_expert.json`` on the training split (or ``--expert`` a trained one): the expert whose pooled features give
   the domain-FID (the bundle's evaluation measure).
2. ``train.json`` (the bundle's defaults) for ``--train-minutes`` of wall time.
3. For each sampler and NFE, ``--num-samples`` images (classes in turn) for each of ``--seeds`` sampling seeds, at
   guidance ``--guidance-scale`` (``--precision``: by default CPU bfloat16 autocast where the CPU has bfloat16
   instructions, else float32); FID against the real validation split (where the
   default is chosen) and test split (the final figure) in the expert's feature space, and the sampling
   wall time per image (this machine, alone, all threads). DDPM-1000 is the reference row.

It prints one table (sampler, spacing, NFE, val and test FID mean ± std over seeds, FID / DDPM-1000's FID, time per
image) and writes ``samplers.json`` / ``samplers.md`` into ``--output-dir``.

Usage::

    python benchmarks/bench_samplers.py --output-dir /tmp/samplers            # about 1 h on 2 CPU cores
    python benchmarks/bench_samplers.py --quick --output-dir /tmp/samplers_q  # pipeline check, a few minutes

The data are PneumoniaMNIST of ``../shared/data`` (``--dataset-dir`` for another copy).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import config_files, machine_summary, markdown_table, run_bundle, shared_data

BUNDLE = "cxr_cfg"
NPZ = "pneumoniamnist/pneumoniamnist.npz"
CLASS_NAMES = ["normal", "pneumonia"]
SPLITS = ("val", "test")  # the sampler and step count are chosen on val; test gives the final figure


def real_images(run_dir: Path, dataset: Path, split: str) -> torch.Tensor:
    """The real images of ``split`` as ``evaluate.json`` reads them (the bundle's own preprocessing)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(config_files(BUNDLE, "evaluate"))
    overrides = {"output_dir": str(run_dir), "dataset_dir": str(dataset), "class_names": CLASS_NAMES}
    parser.update({**overrides, "reference_split": split})
    return parser.get_parsed_content("real").images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/samplers"))
    parser.add_argument("--dataset-dir", default=None)
    parser.add_argument("--expert", type=Path, default=None, help="a trained expert best_model.pt to reuse")
    parser.add_argument("--train-minutes", type=float, default=15.0)
    parser.add_argument("--samplers", nargs="+", default=["ddim", "dpmpp_2m", "dpmpp_3m", "unipc"])
    parser.add_argument("--spacings", nargs="+", default=["uniform", "logsnr"])
    parser.add_argument("--nfe", nargs="+", type=int, default=[5, 8, 10, 15, 20, 25, 50, 100])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=250, help="images per seed (classes in turn)")
    parser.add_argument("--ddpm-samples", type=int, default=None, help="images per seed for DDPM-1000 (default: same)")
    parser.add_argument("--guidance-scale", type=float, default=2.0)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="sampling precision: CPU bfloat16 autocast (bf16), float32, or auto (bf16 where the CPU "
                        "has bfloat16 instructions)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the pipeline, not the samplers")
    args = parser.parse_args()

    from medsyn_monai.apps.generation import DiffusionSampler
    from medsyn_monai.metrics.fid import frechet_distance
    from medsyn_monai.networks.nets import FeatureExtractor
    from medsyn_monai.utils.precision import resolve_cpu_bf16

    bf16 = resolve_cpu_bf16({"fp32": False, "bf16": True}.get(args.precision, "auto"))
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    dataset = shared_data(args.dataset_dir, NPZ)
    if args.quick:
        args.train_minutes, args.nfe, args.seeds, args.num_samples = 0.5, [5, 10], 1, 20
    run_dir = out / "model"
    common = {"dataset_dir": dataset, "class_names": CLASS_NAMES, "device": "cpu"}
    expert = args.expert
    if expert is None:
        expert = out / "expert" / "models" / "expert" / "best_model.pt"
        if not expert.is_file():
            run_bundle(BUNDLE, "train_expert", log, output_dir=out / "expert", max_epochs=1 if args.quick else 10,
                       sample_interval=0, **common)  # fmt: skip
    if not (run_dir / "models" / "model.pt").is_file():
        run_bundle(BUNDLE, "train", log, output_dir=run_dir, max_epochs=1000, max_train_minutes=args.train_minutes,
                   sample_interval=0, **common)  # fmt: skip
    extractor = FeatureExtractor.from_expert_checkpoint(expert)
    real_features = {split: extractor.extract(real_images(run_dir, dataset, split)) for split in SPLITS}
    ckpt = run_dir / "models" / "model.pt"

    def measure(kind: str, spacing: str | None, steps: int | None, num: int) -> dict[str, Any]:
        fids: dict[str, list[float]] = {split: [] for split in SPLITS}
        seconds = 0.0
        for seed in range(args.seeds):
            sampler = DiffusionSampler.from_checkpoint(
                ckpt, scheduler_type=kind, num_inference_steps=steps, guidance_scale=args.guidance_scale,
                num_samples=num, batch_size=250, seed=seed, device="cpu", verbose=False, save_png=False,
                cpu_bf16=bf16,
                scheduler_options={"timestep_spacing": spacing} if spacing else None,
            )  # fmt: skip
            sampler.load_weights()
            start = time.perf_counter()
            images, _ = sampler.generate(num_samples=num, seed=seed)
            seconds += time.perf_counter() - start
            features = extractor.extract(images)
            for split, reference in real_features.items():
                fids[split].append(frechet_distance(reference, features))
        nfe = steps if steps is not None else sampler.scheduler.num_train_timesteps
        row: dict[str, Any] = {"sampler": kind, "spacing": spacing or "-", "nfe": nfe,
                               "seconds_per_image": seconds / (num * args.seeds), "fids": fids}  # fmt: skip
        for split, values in fids.items():
            row[f"fid_{split}_mean"], row[f"fid_{split}_std"] = float(np.mean(values)), float(np.std(values))
        print(json.dumps({k: v for k, v in row.items() if k != "fids"}), flush=True)
        return row

    results_path = out / "samplers.json"
    rows: list[dict[str, Any]] = json.loads(results_path.read_text())["rows"] if results_path.is_file() else []
    done = {(r["sampler"], r["spacing"], r["nfe"]) for r in rows}

    def keep(row: dict[str, Any]) -> None:
        rows.append(row)
        settings = {k: str(v) for k, v in vars(args).items()}
        results_path.write_text(json.dumps({"args": settings, "rows": rows}, indent=1))

    if ("ddpm", "-", 1000) not in done:
        keep(measure("ddpm", None, None, args.ddpm_samples or args.num_samples))
    for kind in args.samplers:
        for spacing in args.spacings:
            for nfe in args.nfe:
                if (kind, spacing, nfe) not in done:
                    keep(measure(kind, spacing, nfe, args.num_samples))
    ddpm = next(r for r in rows if r["sampler"] == "ddpm")
    table = [
        {
            **r,
            **{f"{split} FID": f"{r[f'fid_{split}_mean']:.1f} ± {r[f'fid_{split}_std']:.1f}" for split in SPLITS},
            **{f"{split} ratio": r[f"fid_{split}_mean"] / ddpm[f"fid_{split}_mean"] for split in SPLITS},
            "ms_per_image": 1000 * r["seconds_per_image"],
        }  # fmt: skip
        for r in sorted(rows, key=lambda r: (r["sampler"] != "ddpm", r["sampler"], r["spacing"], r["nfe"]))
    ]
    columns = ["sampler", "spacing", "nfe", "val FID", "val ratio", "test FID", "test ratio", "ms_per_image"]
    md = markdown_table(table, columns, float_format=".3g")
    precision = "bf16" if bf16 else "fp32"
    setting = f"{precision}; guidance {args.guidance_scale}, {args.seeds} seeds x {args.num_samples} images"
    md = f"{machine_summary()}; {setting}\n\n{md}"
    (out / "samplers.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
