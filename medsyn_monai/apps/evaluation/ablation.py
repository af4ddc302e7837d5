"""Train several variants of a bundle on the same data and budget and compare them by FID, KID and SSIM diversity."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run

from medsyn_monai.apps.generation.sampler import DiffusionSampler
from medsyn_monai.metrics import KernelInceptionDistance, frechet_distance, intra_set_ssim
from medsyn_monai.networks.nets.feature_extractor import FeatureExtractor
from medsyn_monai.utils.io import write_json

__all__ = ["AblationStudy"]


class AblationStudy:
    """Run a bundle's ``train.json`` once per variant and seed, sample each model, and tabulate FID / KID / SSIM.

    Every variant is the same training config with a few overrides (e.g. ``{"time_injection": "first"}``), trained
    on the same data with the same budget (``common_overrides``: epochs, image size, ...) for each seed. Each trained
    model samples ``num_samples`` images with the bundle's ``inference.json`` settings (same noise seeds for every
    model); the samples are compared with ``real_images`` through ``feature_extractor`` (a domain expert: FID values
    compare only within one extractor) and by intra-set SSIM (lower = more diverse). Results: mean ± std over seeds
    per variant, printed as a Markdown table and written to ``output_dir/ablation.json`` and ``ablation.md``.
    With ``sampling_steps`` every trained model is also sampled with each of several DDIM step counts, giving one row
    per variant and step count with the sampling time per image — the diffusion-steps ablation (train-time ``T`` as
    variants × sampling steps, quality vs time).
    Finished runs are reused: a variant/seed whose ``models/model.pt`` exists is not retrained (delete its folder to
    redo it), so an interrupted ablation continues where it stopped.

    Args:
        train_config: path of the bundle's ``train.json``.
        inference_config: path of the bundle's ``inference.json`` (gives network and sampler settings).
        variants: variant name → overrides of ``train.json``.
        seeds: training (and sampling) seeds; at least 2 for a standard deviation.
        real_images: reference images ``(N, C, H, W)`` in [-1, 1] at the trained image size.
        feature_extractor: features for FID/KID.
        output_dir: folder of the runs and the table.
        common_overrides: overrides applied to every run (dataset_dir, max_epochs, image_size, ...).
        num_samples: images sampled per model.
        num_inference_steps: DDIM steps for sampling (when ``sampling_steps`` is not given).
        sampling_steps: several DDIM step counts to sample every model with (a row per variant and count).
        kid_subset_size: KID subset size (capped by the set sizes).
        ssim_pairs: random pairs for intra-set SSIM.
    """

    def __init__(
        self,
        train_config: str | Path,
        inference_config: str | Path,
        variants: Mapping[str, Mapping[str, Any]],
        seeds: Sequence[int],
        real_images: torch.Tensor,
        feature_extractor: FeatureExtractor,
        output_dir: str | Path,
        common_overrides: Mapping[str, Any] | None = None,
        num_samples: int = 256,
        num_inference_steps: int = 50,
        kid_subset_size: int = 100,
        ssim_pairs: int = 500,
        sampling_steps: Sequence[int] | None = None,
    ) -> None:
        if not variants:
            raise ValueError("variants must name at least one variant.")
        if not seeds:
            raise ValueError("seeds must hold at least one seed.")
        if real_images.ndim != 4 or real_images.shape[0] < 2:
            raise ValueError(f"real_images must be (N >= 2, C, H, W), got {tuple(real_images.shape)}.")
        self.train_config = str(train_config)
        self.inference_config = str(inference_config)
        self.variants = {str(k): dict(v) for k, v in variants.items()}
        self.seeds = [int(s) for s in seeds]
        self.real_images = real_images.float()
        self.feature_extractor = feature_extractor
        self.output_dir = Path(output_dir)
        self.common_overrides = dict(common_overrides or {})
        self.num_samples = num_samples
        self.num_inference_steps = num_inference_steps
        self.sampling_steps = [int(s) for s in sampling_steps] if sampling_steps else None
        if self.sampling_steps is not None and min(self.sampling_steps) < 1:
            raise ValueError(f"sampling_steps must be positive, got {self.sampling_steps}.")
        self.kid = KernelInceptionDistance(num_subsets=50, subset_size=kid_subset_size, seed=0)
        self.ssim_pairs = ssim_pairs
        self.logger = logging.getLogger(__name__)

    def run_dir(self, variant: str, seed: int) -> Path:
        return self.output_dir / variant / f"seed_{seed}"

    def train(self, variant: str, seed: int) -> float:
        """Train one variant/seed (skipped when its model exists); returns the training seconds (0 if skipped)."""
        out = self.run_dir(variant, seed)
        if (out / "models" / "model.pt").is_file():
            self.logger.info(f"{variant} seed {seed}: reusing {out}")
            return 0.0
        t0 = time.perf_counter()
        overrides = {**self.common_overrides, **self.variants[variant], "seed": seed, "output_dir": str(out)}
        bundle_run(config_file=self.train_config, **overrides)
        return time.perf_counter() - t0

    def sampler(self, variant: str, seed: int) -> DiffusionSampler:
        """The bundle's inference sampler for one trained model, weights loaded (built once per model)."""
        parser = ConfigParser()
        parser.read_config(self.inference_config)
        parser.update({"output_dir": str(self.run_dir(variant, seed)), "seed": seed,
                       "num_inference_steps": self.num_inference_steps, "num_samples": self.num_samples})  # fmt: skip
        sampler: DiffusionSampler = parser.get_parsed_content("sampler")
        sampler.verbose = False
        sampler.load_weights()
        return sampler

    def sample(self, sampler: DiffusionSampler, seed: int, num_inference_steps: int) -> torch.Tensor:
        """``num_samples`` images from ``sampler`` with ``num_inference_steps`` DDIM steps (same noise each time)."""
        if sampler.num_inference_steps is not None:  # None: a DDPM sampler uses all its training steps
            sampler.num_inference_steps = num_inference_steps
        images, _ = sampler.generate(seed=seed)
        return images

    def score(self, images: torch.Tensor, real_features: torch.Tensor) -> dict[str, float]:
        fake_features = self.feature_extractor.extract(images)
        kid_mean, _ = self.kid(real_features, fake_features)
        return {
            "fid": frechet_distance(real_features, fake_features),
            "kid": float(kid_mean),
            "ssim_intra": float(intra_set_ssim(images, num_pairs=self.ssim_pairs, seed=0)),
        }

    def run(self) -> dict[str, Any]:
        """Train, sample and score every variant and seed; print and write the table."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        real_features = self.feature_extractor.extract(self.real_images)
        results: dict[str, Any] = {"variants": {}, "seeds": self.seeds, "num_samples": self.num_samples,
                                   "reference": {"ssim_intra_real": float(intra_set_ssim(
                                       self.real_images, num_pairs=self.ssim_pairs, seed=0))}}  # fmt: skip
        steps_list = self.sampling_steps or [self.num_inference_steps]
        for variant in self.variants:
            runs: dict[int, list[dict[str, float]]] = {steps: [] for steps in steps_list}
            for seed in self.seeds:
                seconds = self.train(variant, seed)
                sampler = self.sampler(variant, seed)
                for steps in steps_list:
                    t0 = time.perf_counter()
                    images = self.sample(sampler, seed, steps)
                    per_image = (time.perf_counter() - t0) / images.shape[0]
                    scores = self.score(images, real_features)
                    runs[steps].append({"seed": seed, "train_seconds": seconds, "sample_seconds_per_image": per_image,
                                        **scores})  # fmt: skip
                    self.logger.info(f"{variant} seed {seed}, {steps} steps: {scores}")
            for steps in steps_list:
                name = variant if self.sampling_steps is None else f"{variant}, {steps} steps"
                keys = ("fid", "kid", "ssim_intra", "sample_seconds_per_image")
                summary = {f"{k}_{stat}": float(fn([r[k] for r in runs[steps]])) for k in keys
                           for stat, fn in (("mean", np.mean), ("std", np.std))}  # fmt: skip
                results["variants"][name] = {"overrides": self.variants[variant], "num_inference_steps": steps,
                                             "runs": runs[steps], **summary}  # fmt: skip
        table = self.table(results)
        print(table)
        write_json(self.output_dir / "ablation.json", results)
        (self.output_dir / "ablation.md").write_text(table + "\n")
        return results

    def table(self, results: Mapping[str, Any]) -> str:
        lines = [
            f"| variant | overrides | FID ↓ (mean ± std, {len(self.seeds)} seeds) | KID ↓ | SSIM intra ↓ | "
            "sampling s/img |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for name, r in results["variants"].items():
            overrides = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "—"
            lines.append(
                f"| {name} | {overrides} | {r['fid_mean']:.2f} ± {r['fid_std']:.2f} | "
                f"{r['kid_mean']:.4f} ± {r['kid_std']:.4f} | {r['ssim_intra_mean']:.3f} ± {r['ssim_intra_std']:.3f} | "
                f"{r['sample_seconds_per_image_mean']:.3f} |"
            )
        lines.append(f"| real images (reference) | — | — | — | {results['reference']['ssim_intra_real']:.3f} | — |")
        return "\n".join(lines)
