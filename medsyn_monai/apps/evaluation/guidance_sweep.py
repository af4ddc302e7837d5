"""Expert accuracy (and FID) of a class-conditional diffusion model over classifier-free guidance scales."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from medsyn_monai.apps.evaluation.generation_accuracy import GenerationAccuracyStudy
from medsyn_monai.metrics import frechet_distance
from medsyn_monai.utils.image_grid import make_grid, save_grid_png
from medsyn_monai.utils.io import atomic_write, write_json

__all__ = ["GuidanceSweep"]


class _FixedGuidance:
    """A generator proxy that samples with one guidance scale and keeps every image it produced."""

    def __init__(self, sampler: Any, guidance_scale: float) -> None:
        self.sampler = sampler
        self.guidance_scale = float(guidance_scale)
        self.images: list[torch.Tensor] = []

    def generate(
        self, num_samples: int | None = None, labels: Sequence[int] | None = None, seed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        previous = self.sampler.guidance_scale
        self.sampler.guidance_scale = self.guidance_scale
        try:
            images, out_labels = self.sampler.generate(num_samples=num_samples, labels=labels, seed=seed, verbose=False)
        finally:
            self.sampler.guidance_scale = previous
        self.images.append(images)
        return images, out_labels


class GuidanceSweep:
    """Generation accuracy of a frozen expert, and optionally FID, for each classifier-free guidance scale.

    Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance") trades diversity for
    class fidelity: larger ``w`` makes the expert recognise the requested class more often, up to the point where
    images over-saturate (Lin et al. 2024 counter this with a guidance rescale). For every ``w`` in
    ``guidance_scales`` this runs :class:`~medsyn_monai.apps.evaluation.GenerationAccuracyStudy` with the same seeds and
    class order (so every ``w`` sees identical starting noise) and, with ``real_images`` and a
    ``feature_extractor``, the Fréchet distance between the real features and those of all images generated at
    that ``w``.

    Args:
        sampler: a :class:`~medsyn_monai.apps.generation.DiffusionSampler` of a class-conditional model with its weights
            loaded; its ``guidance_scale`` is set for each run and restored afterwards (the inferer's
            ``guidance_rescale`` applies).
        expert: classifier returning logits ``(B, C)`` for images in ``[-1, 1]``.
        class_names: the model's class names (the expert uses the same indices).
        guidance_scales: the ``w`` values (each >= 0, at least one).
        num_seeds: sampling seeds per ``w``.
        samples_per_class: images per class and seed.
        base_seed: seed of the first sampling run.
        real_images: optional ``(N, C, H, W)`` real images in ``[-1, 1]`` for the FID per ``w``.
        feature_extractor: object with ``extract(images, device) -> (N, D)`` (e.g.
            :class:`~medsyn_monai.networks.nets.FeatureExtractor`), needed for the FID.
        output_dir: where ``guidance_sweep.json``, ``guidance_sweep.md`` and ``guidance_w<w>.png`` (the images of
            the first seed, one row per class) go; ``None``: nothing written.
        device: device of the expert and the feature extractor.

    Raises:
        ValueError: no or negative guidance scales, ``num_seeds`` / ``samples_per_class`` < 1, or ``real_images``
            without a ``feature_extractor`` (or the reverse).
    """

    def __init__(
        self,
        sampler: Any,
        expert: torch.nn.Module,
        class_names: Sequence[str],
        guidance_scales: Sequence[float] = (1.0, 3.0),
        num_seeds: int = 1,
        samples_per_class: int = 10,
        base_seed: int = 0,
        real_images: torch.Tensor | None = None,
        feature_extractor: Any | None = None,
        output_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        scales = [float(w) for w in guidance_scales]
        if not scales or any(w < 0 for w in scales):
            raise ValueError(f"guidance_scales must be a non-empty list of values >= 0, got {list(guidance_scales)}.")
        keys = [self.key(w) for w in scales]
        if len(set(keys)) != len(keys):
            raise ValueError(f"guidance_scales must be distinct (as metric names {keys}), got {list(guidance_scales)}.")
        if num_seeds < 1 or samples_per_class < 1:
            raise ValueError(f"num_seeds and samples_per_class must be >= 1, got {num_seeds}, {samples_per_class}.")
        if (real_images is None) != (feature_extractor is None):
            raise ValueError("the FID per guidance scale needs both real_images and a feature_extractor (or neither).")
        self.sampler = sampler
        self.expert = expert
        self.class_names = list(class_names)
        self.guidance_scales = scales
        self.num_seeds = int(num_seeds)
        self.samples_per_class = int(samples_per_class)
        self.base_seed = int(base_seed)
        self.real_images = real_images
        self.feature_extractor = feature_extractor
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.device = torch.device(device)
        self.logger = logging.getLogger(__name__)

    @staticmethod
    def key(w: float) -> str:
        """Suffix of the flat metric names for guidance scale ``w``, e.g. ``"w3"`` or ``"w1.5"``."""
        return f"w{w:g}"

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        assert self.feature_extractor is not None  # the constructor requires it with real_images
        return self.feature_extractor.extract(images, device=self.device).double().cpu()

    def run(self) -> dict[str, Any]:
        """Sample and score every guidance scale; write the files when ``output_dir`` is set.

        Returns:
            flat metrics: ``generation_accuracy_<key>`` and ``generation_accuracy_std_<key>`` per scale, and
            ``fid_<key>`` with real images (see :meth:`key`).
        """
        real_features = None
        if self.real_images is not None:
            real_features = self._features(self.real_images)
        flat: dict[str, Any] = {}
        rows = []
        for w in self.guidance_scales:
            proxy = _FixedGuidance(self.sampler, w)
            result = GenerationAccuracyStudy(
                generator=proxy,
                expert=self.expert,
                class_names=self.class_names,
                num_seeds=self.num_seeds,
                samples_per_class=self.samples_per_class,
                base_seed=self.base_seed,
                device=self.device,
            ).run()
            row: dict[str, Any] = {
                "guidance_scale": w,
                "generation_accuracy_mean": result["generation_accuracy_mean"],
                "generation_accuracy_std": result["generation_accuracy_std"],
                "generation_accuracy_per_class": result["generation_accuracy_per_class"],
            }
            images = torch.cat(proxy.images)
            if real_features is not None:
                fake = self._features(images)
                row["fid"] = frechet_distance(real_features, fake)
                flat[f"fid_{self.key(w)}"] = row["fid"]
            flat[f"generation_accuracy_{self.key(w)}"] = row["generation_accuracy_mean"]
            flat[f"generation_accuracy_std_{self.key(w)}"] = row["generation_accuracy_std"]
            rows.append(row)
            self.logger.info(f"guidance scale {w:g}: generation accuracy {row['generation_accuracy_mean']:.3f}")
            if self.output_dir is not None:
                first = proxy.images[0]
                save_grid_png(
                    make_grid(first, nrow=self.samples_per_class), self.output_dir / f"guidance_{self.key(w)}.png"
                )
        if self.output_dir is not None:
            self._write(rows)
        return flat

    def _write(self, rows: list[dict[str, Any]]) -> None:
        out = self.output_dir
        assert out is not None
        out.mkdir(parents=True, exist_ok=True)
        info = {
            "num_seeds": self.num_seeds,
            "samples_per_class": self.samples_per_class,
            "base_seed": self.base_seed,
            "class_names": self.class_names,
            "guidance_rescale": getattr(getattr(self.sampler, "inferer", None), "guidance_rescale", None),
            "rows": rows,
        }
        write_json(out / "guidance_sweep.json", info)
        has_fid = any("fid" in r for r in rows)
        lines = [
            "# Classifier-free guidance sweep",
            "",
            f"{self.num_seeds} seed(s) x {self.samples_per_class} images per class and guidance scale; the expert's "
            "accuracy against the class each image was generated for (higher is better)"
            + (
                "; FID against the real images on the expert's features (lower is better; computed on "
                f"{self.num_seeds * self.samples_per_class * len(self.class_names)} images per scale, so biased "
                "upwards by the small sets: compare scales with each other, not with the main FID)."
                if has_fid
                else "."
            ),
            "",
            "| guidance scale w | generation accuracy | std over seeds |" + (" FID |" if has_fid else ""),
            "|---|---|---|" + ("---|" if has_fid else ""),
        ]
        for r in rows:
            fid = f" {r['fid']:.4g} |" if has_fid and r.get("fid") is not None else (" n/a |" if has_fid else "")
            lines.append(
                f"| {r['guidance_scale']:g} | {r['generation_accuracy_mean']:.4g} | "
                f"{r['generation_accuracy_std']:.4g} |" + fid
            )
        lines += ["", *[f"![w = {r['guidance_scale']:g}](guidance_{self.key(r['guidance_scale'])}.png)" for r in rows]]
        text = "\n".join(lines) + "\n"
        atomic_write(out / "guidance_sweep.md", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        self.logger.info(f"guidance sweep written to {out}")
