"""Train variants of a diffusion recipe on the same data and budget and compare them by FID, KID and SSIM diversity."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.handlers import LrScheduleHandler
from monai.networks.schedulers import Scheduler
from monai.optimizers import WarmupCosineSchedule
from monai.utils import set_determinism
from scipy.stats import ttest_ind, ttest_rel
from torch import nn
from torch.utils.data import DataLoader

from medsyn_monai.apps.generation.sampler import DiffusionSampler
from medsyn_monai.engines.trainer import DiffusionTrainer
from medsyn_monai.handlers import AtomicCheckpoint, ExponentialMovingAverage
from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.losses import DiffusionLoss
from medsyn_monai.metrics import KernelInceptionDistance, frechet_distance, intra_set_ssim
from medsyn_monai.networks.nets import network_config
from medsyn_monai.utils.io import write_json

__all__ = ["AblationStudy"]

_PARTS = ("network", "scheduler")


@dataclass(frozen=True)
class TrainingRecipe:
    """The training settings every variant and seed of an ablation shares (written to ``ablation.json``)."""

    max_epochs: int
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    lr_end_factor: float
    ema_decay: float
    ema_warmup_steps: int | None
    max_grad_norm: float | None
    loss_type: str


class AblationStudy:
    """Train one model per variant and seed with the same recipe, sample each, and tabulate FID / KID / SSIM.

    A variant changes the network's or the noise schedule's arguments, e.g. ``{"network": {"time_injection":
    "first"}}`` (the lightweight CT U-Net's ablation) or ``{"scheduler": {"num_train_timesteps": 250}}`` (the
    diffusion-steps ablation); everything else is the same for every run: data (``train_loader``), optimiser (AdamW,
    ``learning_rate``, ``weight_decay``), warm-up + cosine learning-rate schedule, EMA, gradient clipping, epochs,
    and the training engine, :class:`~medsyn_monai.engines.DiffusionTrainer`. Each run is seeded with
    :func:`monai.utils.set_determinism` (initial weights, shuffling, noise) and written to
    ``output_dir/<variant>/seed_<seed>/models`` (``model.pt``, ``checkpoint.pt``, ``model_info.json``), where an
    existing ``model.pt`` is reused, so an interrupted study continues where it stopped (delete a run's folder to
    redo it).

    Every trained model samples ``num_samples`` images (DDIM, the same noise seeds for every model) and is compared
    with ``real_images`` through ``feature_extractor`` (a domain expert: FID values compare only within one
    extractor) and by intra-set SSIM (lower = more diverse). Results: mean ± std over seeds per variant, printed as a
    Markdown table and written to ``output_dir/ablation.json`` and ``ablation.md``. With ``sampling_steps`` every
    model is also sampled with each of several DDIM step counts (a row per variant and count, with the sampling
    time per image): train-time ``T`` as variants × sampling steps gives quality against time.

    Whether two variants differ beyond their seed spread is part of the table: every variant's FID is compared with
    the first variant's (at the same sampling step count), with at least 2 seeds. Runs of one seed share the
    shuffling and the sampling noise across variants, so the comparison is *paired by seed*: the per-seed
    difference ``FID(variant) - FID(first)`` (mean ± std, ``fid_vs_first_diff_mean`` / ``_std``) and the paired
    t-test (:func:`scipy.stats.ttest_rel`, ``fid_vs_first_paired_p``); Welch's unpaired t-test
    (:func:`scipy.stats.ttest_ind`, unequal variances, ``fid_vs_first_p``) is given beside it. With few seeds the
    tests are weak: a large p means "not shown to differ", not "equal".

    Args:
        network_factory: callable returning a fresh network, taking a variant's ``"network"`` overrides as keyword
            arguments (in a bundle config: its ``network_def`` with ``"_mode_": "callable"``).
        scheduler_factory: callable returning the training noise scheduler, taking a variant's ``"scheduler"``
            overrides (e.g. ``DDPMScheduler`` with ``"_mode_": "callable"``).
        variants: variant name → ``{"network": {...}, "scheduler": {...}}`` (either part may be left out).
        seeds: training (and sampling) seeds; at least 2 for a standard deviation.
        train_loader: the training data, ``{"image"[, "label"]}`` batches.
        real_images: reference images ``(N, C, H, W)`` in [-1, 1] at the trained image size.
        feature_extractor: features for FID/KID (``extract(images) -> (N, D)``).
        output_dir: folder of the runs and the table.
        max_epochs: training epochs of every run.
        learning_rate: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear learning-rate warm-up iterations, then cosine decay to ``lr_end_factor`` of it.
        lr_end_factor: final learning rate as a fraction of ``learning_rate``.
        ema_decay: decay of the EMA weights that are sampled.
        ema_warmup_steps: iterations of the EMA decay warm-up.
        max_grad_norm: gradient clipping (``None``: none).
        loss_type: ``"l2"`` or ``"l1"`` (:class:`~medsyn_monai.losses.DiffusionLoss`).
        label_key: batch key of class labels for class-conditional networks (``None``: unconditional).
        model_info: further ``model_info.json`` entries of every run (``image_size``, ``in_channels``,
            ``class_names``, ``intensity_range``, ``scheduler`` with the base schedule's ``schedule`` name, ...);
            ``network`` and the variant's ``scheduler`` settings are written by the study.
        cpu_bf16: bfloat16 autocast on the CPU.
        device: training and sampling device.
        num_samples: images sampled per model.
        num_inference_steps: DDIM steps for sampling (when ``sampling_steps`` is not given).
        sampling_steps: several DDIM step counts to sample every model with (a row per variant and count).
        kid_subset_size: KID subset size (capped by the set sizes).
        ssim_pairs: random pairs for intra-set SSIM.

    Raises:
        ValueError: no variants or seeds, a variant with other parts than ``network`` / ``scheduler``, bad
            ``real_images`` or ``sampling_steps``.
    """

    def __init__(
        self,
        network_factory: Callable[..., nn.Module],
        scheduler_factory: Callable[..., Scheduler],
        variants: Mapping[str, Mapping[str, Mapping[str, Any]]],
        seeds: Sequence[int],
        train_loader: DataLoader | Sequence,
        real_images: torch.Tensor,
        feature_extractor: Any,
        output_dir: str | Path,
        max_epochs: int,
        learning_rate: float = 2e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        lr_end_factor: float = 0.05,
        ema_decay: float = 0.995,
        ema_warmup_steps: int | None = None,
        max_grad_norm: float | None = None,
        loss_type: str = "l2",
        label_key: str | None = None,
        model_info: Mapping[str, Any] | None = None,
        cpu_bf16: bool = False,
        device: str | torch.device = "cpu",
        num_samples: int = 256,
        num_inference_steps: int = 50,
        sampling_steps: Sequence[int] | None = None,
        kid_subset_size: int = 100,
        ssim_pairs: int = 500,
    ) -> None:
        if not variants:
            raise ValueError("variants must name at least one variant.")
        for name, parts in variants.items():
            unknown = sorted(set(parts) - set(_PARTS))
            if unknown:
                raise ValueError(f"variant {name!r}: unknown parts {unknown}; a variant overrides {list(_PARTS)}.")
        if not seeds:
            raise ValueError("seeds must hold at least one seed.")
        if real_images.ndim != 4 or real_images.shape[0] < 2:
            raise ValueError(f"real_images must be (N >= 2, C, H, W), got {tuple(real_images.shape)}.")
        self.network_factory = network_factory
        self.scheduler_factory = scheduler_factory
        self.variants = {str(k): {p: dict(v.get(p) or {}) for p in _PARTS} for k, v in variants.items()}
        self.seeds = [int(s) for s in seeds]
        self.train_loader = train_loader
        self.real_images = real_images.float()
        self.feature_extractor = feature_extractor
        self.output_dir = Path(output_dir)
        self.recipe = TrainingRecipe(
            max_epochs=int(max_epochs),
            learning_rate=float(learning_rate),
            weight_decay=float(weight_decay),
            warmup_steps=int(warmup_steps),
            lr_end_factor=float(lr_end_factor),
            ema_decay=float(ema_decay),
            ema_warmup_steps=None if ema_warmup_steps is None else int(ema_warmup_steps),
            max_grad_norm=None if max_grad_norm is None else float(max_grad_norm),
            loss_type=str(loss_type),
        )
        self.label_key = label_key
        self.model_info = dict(model_info or {})
        self.cpu_bf16 = cpu_bf16
        self.device = torch.device(device)
        self.num_samples = int(num_samples)
        self.num_inference_steps = int(num_inference_steps)
        self.sampling_steps = [int(s) for s in sampling_steps] if sampling_steps else None
        if self.sampling_steps is not None and min(self.sampling_steps) < 1:
            raise ValueError(f"sampling_steps must be positive, got {self.sampling_steps}.")
        self.kid = KernelInceptionDistance(num_subsets=50, subset_size=kid_subset_size, seed=0)
        self.ssim_pairs = int(ssim_pairs)
        self.logger = logging.getLogger(__name__)

    def run_dir(self, variant: str, seed: int) -> Path:
        return self.output_dir / variant / f"seed_{seed}"

    def train(self, variant: str, seed: int) -> float:
        """Train one variant/seed (skipped when its model exists); returns the training seconds (0 if skipped)."""
        models = self.run_dir(variant, seed) / "models"
        if (models / "model.pt").is_file():
            self.logger.info(f"{variant} seed {seed}: reusing {models}")
            return 0.0
        t0 = time.perf_counter()
        r = self.recipe
        set_determinism(seed=seed)
        network = self.network_factory(**self.variants[variant]["network"]).to(self.device)
        scheduler = self.scheduler_factory(**self.variants[variant]["scheduler"])
        ema = copy.deepcopy(network)
        optimizer = torch.optim.AdamW(network.parameters(), lr=r.learning_rate, weight_decay=r.weight_decay)
        total = max(1, r.max_epochs * len(self.train_loader))
        lr_schedule = WarmupCosineSchedule(optimizer, warmup_steps=r.warmup_steps, t_total=total,
                                           end_lr=r.learning_rate * r.lr_end_factor)  # fmt: skip
        schedule = {**self.model_info.get("scheduler", {}), **self.variants[variant]["scheduler"],
                    "num_train_timesteps": scheduler.num_train_timesteps,
                    "prediction_type": scheduler.prediction_type}  # fmt: skip
        info = {**self.model_info, "network": network_config(network), "scheduler": schedule,
                "ablation_variant": variant, "seed": seed}  # fmt: skip
        handlers = [
            # MONAI annotates the handler with the pre-2.0 _LRScheduler; any torch LR scheduler works
            LrScheduleHandler(lr_schedule, epoch_level=False, print_lr=False),  # type: ignore[arg-type]  # _LRScheduler
            ExponentialMovingAverage(network, ema, decay=r.ema_decay, warmup_iters=r.ema_warmup_steps),
            AtomicCheckpoint(
                models,
                {"network": network, "ema": ema, "optimizer": optimizer},
                model_key="ema",
                model_info=info,
                settings={"model": info, "recipe": asdict(r)},
            ),
        ]
        trainer = DiffusionTrainer(
            self.device,
            r.max_epochs,
            self.train_loader,
            network,
            optimizer,
            scheduler,
            loss_function=DiffusionLoss(r.loss_type),
            inferer=ConditionalDiffusionInferer(scheduler, cpu_bf16=self.cpu_bf16),
            label_key=self.label_key,
            max_grad_norm=r.max_grad_norm,
            train_handlers=handlers,
        )
        trainer.run()
        return time.perf_counter() - t0

    def sampler(self, variant: str, seed: int) -> DiffusionSampler:
        """The sampler of one trained model (its ``scheduler_type``), weights loaded."""
        sampler = DiffusionSampler.from_checkpoint(
            self.run_dir(variant, seed) / "models" / "model.pt",
            num_samples=self.num_samples,
            num_inference_steps=self.num_inference_steps,
            cpu_bf16=self.cpu_bf16,
            seed=seed,
            device=self.device,
            verbose=False,
        )
        sampler.load_weights()
        return sampler

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
        reference = {"ssim_intra_real": float(intra_set_ssim(self.real_images, num_pairs=self.ssim_pairs, seed=0))}
        results: dict[str, Any] = {"variants": {}, "seeds": self.seeds, "num_samples": self.num_samples,
                                   "recipe": asdict(self.recipe), "reference": reference}  # fmt: skip
        steps_list = self.sampling_steps or [self.num_inference_steps]
        for variant in self.variants:
            runs: dict[int, list[dict[str, float]]] = {steps: [] for steps in steps_list}
            for seed in self.seeds:
                seconds = self.train(variant, seed)
                sampler = self.sampler(variant, seed)
                for steps in steps_list:
                    sampler.num_inference_steps = steps
                    t0 = time.perf_counter()
                    images, _ = sampler.generate(seed=seed)
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
                summary["train_seconds_mean"] = float(np.mean([r["train_seconds"] for r in runs[steps]]))
                first = next(iter(self.variants))
                if variant != first and len(self.seeds) >= 2:
                    first_name = first if self.sampling_steps is None else f"{first}, {steps} steps"
                    base_fids = [r["fid"] for r in results["variants"][first_name]["runs"]]
                    fids = [r["fid"] for r in runs[steps]]
                    diffs = np.asarray(fids) - np.asarray(base_fids)  # the same seeds in the same order
                    summary["fid_vs_first_diff_mean"] = float(diffs.mean())
                    summary["fid_vs_first_diff_std"] = float(diffs.std())
                    summary["fid_vs_first_paired_p"] = self.paired_p(base_fids, fids)
                    summary["fid_vs_first_p"] = self.welch_p(base_fids, fids)
                overrides = {k: v for part in self.variants[variant].values() for k, v in part.items()}
                results["variants"][name] = {"overrides": overrides, "num_inference_steps": steps,
                                             "runs": runs[steps], **summary}  # fmt: skip
        table = self.table(results)
        print(table)
        write_json(self.output_dir / "ablation.json", results)
        (self.output_dir / "ablation.md").write_text(table + "\n")
        return results

    @staticmethod
    def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
        """Two-sided p of Welch's t-test between two sets of per-seed values.

        Two constant sets give 1.0 when equal and 0.0 when they differ (the t statistic is undefined there).

        Example:
            >>> AblationStudy.welch_p([10.0, 11.0, 12.0], [30.0, 31.0, 32.0]) < 1e-4
            True
            >>> AblationStudy.welch_p([5.0, 5.0], [5.0, 5.0])
            1.0
        """
        a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if np.ptp(a_) == 0 and np.ptp(b_) == 0:
            return 1.0 if a_[0] == b_[0] else 0.0
        return float(ttest_ind(a_, b_, equal_var=False).pvalue)

    @staticmethod
    def paired_p(a: Sequence[float], b: Sequence[float]) -> float:
        """Two-sided p of the paired t-test of ``b - a`` (per seed) against 0.

        Constant differences give 1.0 when they are 0 and 0.0 otherwise (the t statistic is undefined there).

        Example:
            >>> AblationStudy.paired_p([10.0, 20.0, 30.0], [11.0, 21.1, 30.9]) > 0.05  # + 1.0, + 1.1, + 0.9
            False
            >>> AblationStudy.paired_p([10.0, 20.0, 30.0], [12.0, 19.0, 30.5]) > 0.05
            True
        """
        d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
        if np.ptp(d) == 0:
            return 1.0 if d[0] == 0 else 0.0
        return float(ttest_rel(np.asarray(b, dtype=float), np.asarray(a, dtype=float)).pvalue)

    def table(self, results: Mapping[str, Any]) -> str:
        first = next(iter(results["variants"]), "").split(",")[0]
        lines = [
            f"| variant | overrides | FID ↓ (mean ± std, {len(self.seeds)} seeds) | ΔFID vs {first} (per seed) | "
            "p paired | p Welch | KID ↓ | SSIM intra ↓ | sampling s/img |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in results["variants"].items():
            overrides = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "—"
            if "fid_vs_first_p" in r:
                versus = (f"{r['fid_vs_first_diff_mean']:+.2f} ± {r['fid_vs_first_diff_std']:.2f} | "
                          f"{r['fid_vs_first_paired_p']:.3f} | {r['fid_vs_first_p']:.3f}")  # fmt: skip
            else:
                versus = "— | — | —"
            lines.append(
                f"| {name} | {overrides} | {r['fid_mean']:.2f} ± {r['fid_std']:.2f} | {versus} | "
                f"{r['kid_mean']:.4f} ± {r['kid_std']:.4f} | {r['ssim_intra_mean']:.3f} ± {r['ssim_intra_std']:.3f} | "
                f"{r['sample_seconds_per_image_mean']:.3f} |"
            )
        lines.append(
            f"| real images (reference) | — | — | — | — | — | — | {results['reference']['ssim_intra_real']:.3f} | — |"
        )
        return "\n".join(lines)
