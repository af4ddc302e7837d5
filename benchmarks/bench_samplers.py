"""Samplers against model evaluations: domain-FID of DDIM, DPM-Solver++ (2M, 3M, 2M SDE) and UniPC at 5-100 model
evaluations (NFE) against DDPM with all 1000 steps, on a class-conditional model trained on real data with
classifier-free guidance: ``cxr_cfg`` on PneumoniaMNIST (``--study cxr``, the default) or ``histo_feature_aligned``
on the 6-class MedNIST (``--study mednist``, 32 px).

Steps (every config runs as in the bundle's docs; reused when its output exists — delete a folder to redo it):

1. ``train_expert.json`` on the training split (or ``--expert`` a trained one): the expert whose pooled features give
   the domain-FID (the bundle's evaluation measure).
2. ``train.json`` (the bundle's defaults) for ``--train-minutes`` of wall time.
3. For each sampler and NFE, ``--num-samples`` images (classes in turn) for each of ``--seeds`` sampling seeds, at
   guidance ``--guidance-scale`` (``--precision``: by default CPU bfloat16 autocast where the CPU has bfloat16
   instructions, else float32); FID against the real validation split (where the default is chosen) and test split
   (the final figure) in the expert's feature space, and the sampling wall time per image (median over seeds; this
   machine, alone, all threads). DDPM-1000 is the reference row. Results are kept per seed:
   a rerun with more ``--seeds`` adds only the missing seeds.

It prints one table (sampler, spacing, NFE, val and test FID mean ± std over seeds, FID / DDPM-1000's FID, time per
image) and writes ``samplers.json`` / ``samplers.md`` into ``--output-dir``.

Usage::

    python benchmarks/bench_samplers.py --output-dir /tmp/samplers            # about 1.5 h on 2 CPU cores
    python benchmarks/bench_samplers.py --study mednist --output-dir /tmp/samplers_mednist --train-minutes 10 \
        --samplers ddim dpmpp_2m unipc dpmpp_2m_sde --spacings uniform --nfe 5 8 10 15 20 25 50
    python benchmarks/bench_samplers.py --quick --output-dir /tmp/samplers_q  # pipeline check, a few minutes

The data are PneumoniaMNIST and MedNIST of ``../shared/data`` (``--dataset-dir`` for another copy: the ``.npz`` file
or the folder of MedNIST class folders).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import config_files, machine_summary, markdown_table, mednist, run_bundle, shared_data

# the bundle and the config keys each study sets
STUDIES: dict[str, dict[str, Any]] = {
    "cxr": {"bundle": "cxr_cfg", "class_names": ["normal", "pneumonia"]},
    "mednist": {"bundle": "histo_feature_aligned", "image_size": 32},  # classes: the folder names
}
NPZ = "pneumoniamnist/pneumoniamnist.npz"
SPLITS = ("val", "test")  # the sampler and step count are chosen on val; test gives the final figure


def real_images(study: dict[str, Any], run_dir: Path, dataset: Path, split: str) -> torch.Tensor:
    """The real images of ``split`` as ``evaluate.json`` reads them (the bundle's own preprocessing)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(config_files(study["bundle"], "evaluate"))
    overrides = {"output_dir": str(run_dir), "dataset_dir": str(dataset), **bundle_keys(study)}
    parser.update({**overrides, "reference_split": split})
    return parser.get_parsed_content("real").images


def bundle_keys(study: dict[str, Any]) -> dict[str, Any]:
    """The config keys a study sets in every config of its bundle."""
    return {k: v for k, v in study.items() if k != "bundle"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", choices=sorted(STUDIES), default="cxr")
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/samplers"))
    parser.add_argument("--dataset-dir", default=None)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/medsyn_data"),
                        help="where MedNIST is unzipped (outside the repository)")  # fmt: skip
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
    study = STUDIES[args.study]
    bundle = study["bundle"]
    if args.study == "cxr":
        dataset = shared_data(args.dataset_dir, NPZ)
    else:
        dataset = Path(args.dataset_dir).resolve() if args.dataset_dir else mednist(args.data_dir)
    if args.quick:
        args.train_minutes, args.nfe, args.seeds, args.num_samples = 0.5, [5, 10], 1, 20
    run_dir = out / "model"
    common = {"dataset_dir": dataset, "device": "cpu", **bundle_keys(study)}
    expert = args.expert
    if expert is None:
        expert = out / "expert" / "models" / "expert" / "best_model.pt"
        if not expert.is_file():
            run_bundle(bundle, "train_expert", log, output_dir=out / "expert", max_epochs=1 if args.quick else 10,
                       sample_interval=0, **common)  # fmt: skip
    if not (run_dir / "models" / "model.pt").is_file():
        # the expert is handed on too (``histo_feature_aligned`` aligns to it; other bundles ignore the key)
        run_bundle(bundle, "train", log, output_dir=run_dir, max_epochs=1000, max_train_minutes=args.train_minutes,
                   sample_interval=0, expert_ckpt=expert, **common)  # fmt: skip
    extractor = FeatureExtractor.from_expert_checkpoint(expert)
    real_features = {split: extractor.extract(real_images(study, run_dir, dataset, split)) for split in SPLITS}
    ckpt = run_dir / "models" / "model.pt"

    def measure(kind: str, spacing: str | None, steps: int | None, num: int,
                row: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        """One row: the seeds ``row`` lacks (all seeds when ``None``) are sampled and added."""
        row = row or {"sampler": kind, "spacing": spacing or "-", "fids": {split: [] for split in SPLITS},
                      "seconds": []}  # fmt: skip
        if "seconds" not in row:  # a row of an older run: one mean time for its seeds
            row["seconds"] = [row["seconds_per_image"] * num] * len(row["fids"][SPLITS[0]])
        for seed in range(len(row["fids"][SPLITS[0]]), args.seeds):
            sampler = DiffusionSampler.from_checkpoint(
                ckpt, scheduler_type=kind, num_inference_steps=steps, guidance_scale=args.guidance_scale,
                num_samples=num, batch_size=250, seed=seed, device="cpu", verbose=False, save_png=False,
                cpu_bf16=bf16,
                scheduler_options={"timestep_spacing": spacing} if spacing else None,
            )  # fmt: skip
            sampler.load_weights()
            start = time.perf_counter()
            images, _ = sampler.generate(num_samples=num, seed=seed)
            row["seconds"].append(time.perf_counter() - start)
            features = extractor.extract(images)
            for split, reference in real_features.items():
                row["fids"][split].append(frechet_distance(reference, features))
            row["nfe"] = steps if steps is not None else sampler.scheduler.num_train_timesteps
        row["seconds_per_image"] = float(np.median(row["seconds"])) / num  # median: robust to one disturbed seed
        for split, values in row["fids"].items():
            row[f"fid_{split}_mean"], row[f"fid_{split}_std"] = float(np.mean(values)), float(np.std(values))
        print(json.dumps({k: v for k, v in row.items() if k not in ("fids", "seconds")}), flush=True)
        return row

    results_path = out / "samplers.json"
    rows: list[dict[str, Any]] = json.loads(results_path.read_text())["rows"] if results_path.is_file() else []
    done = {(r["sampler"], r["spacing"], r["nfe"]): r for r in rows}

    def keep(kind: str, spacing: str | None, steps: int | None, num: int) -> None:
        previous = done.get((kind, spacing or "-", steps or 1000))
        if previous is not None and len(previous["fids"][SPLITS[0]]) >= args.seeds:
            return
        row = measure(kind, spacing, steps, num, previous)
        if previous is None:
            rows.append(row)
        settings = {k: str(v) for k, v in vars(args).items()}
        results_path.write_text(json.dumps({"args": settings, "rows": rows}, indent=1))

    keep("ddpm", None, None, args.ddpm_samples or args.num_samples)
    for kind in args.samplers:
        for spacing in args.spacings:
            for nfe in args.nfe:
                keep(kind, spacing, nfe, args.num_samples)
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
    seeds = sorted({len(r["fids"][SPLITS[0]]) for r in rows})
    setting = (f"{bundle} on {args.study}; {precision}; guidance {args.guidance_scale}, "
               f"{'/'.join(map(str, seeds))} seeds x {args.num_samples} images")  # fmt: skip
    md = f"{machine_summary()}; {setting}\n\n{md}"
    (out / "samplers.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
