"""One call that scores synthetic images against real ones and writes ``metrics.json`` and ``report.md``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeGuard

import numpy as np
import torch
from torch import nn

from medsyn_monai.metrics import (
    KernelInceptionDistance,
    PrecisionRecallDensityCoverage,
    class_frequency_test,
    classification_report,
    cross_set_ssim,
    frechet_distance,
    impulse_noise_rate,
    intensity_histogram_test,
    intra_set_ssim,
    kl_divergence,
)
from medsyn_monai.networks.nets.feature_extractor import FeatureExtractor
from medsyn_monai.utils.enums import HistogramUnit
from medsyn_monai.utils.image_grid import make_grid, save_grid_png
from medsyn_monai.utils.io import json_ready, write_json
from medsyn_monai.visualize import save_confusion_matrix_png, save_histogram_png

__all__ = ["SyntheticImageStudy"]

ALPHA = 0.05  # significance level used to interpret the p-values in the report
_VALUE_RANGE = (-1.0, 1.0)
_SSIM_WINDOW = 11  # Gaussian window of the SSIM metric (MONAI default, Wang et al. 2004)
_EXPERT_BATCH = 64  # images per expert forward pass
_GRID_ROW = 8  # images per row of the sample grids
_GRID_MAX = 64  # images per sample grid
_SET_NAMES = ("real", "synthetic")

_MEANINGS = {
    "generation_accuracy_mean": "accuracy of the expert on images generated per class, mean over sampling seeds; "
    "higher is better (the real-image accuracy is its ceiling)",
    "generation_accuracy_std": "standard deviation of the generation accuracy over sampling seeds",
    "fid": "Fréchet distance between Gaussians fitted to real and synthetic features (Heusel 2017); lower is better",
    "kid_mean": "kernel distance: unbiased polynomial-kernel MMD² of the features, mean over random subsets "
    "(Bińkowski 2018); lower is better, about 0 for matching sets",
    "kid_std": "standard deviation of the KID over the subsets (uncertainty of kid_mean); lower is more stable",
    "precision": "fraction of synthetic samples inside the k-NN manifold of the real features (Kynkäänniemi 2019), "
    "i.e. fidelity; higher is better",
    "recall": "fraction of real samples inside the k-NN manifold of the synthetic features (Kynkäänniemi 2019), "
    "i.e. diversity; higher is better",
    "density": "real k-NN balls containing each synthetic sample, divided by k (Naeem 2020); higher is better, "
    "about 1 for matching sets",
    "coverage": "fraction of real samples whose k-NN ball holds a synthetic sample (Naeem 2020); higher is better",
    "ssim_intra_synthetic": "mean pairwise SSIM inside the synthetic set (Wang 2004), i.e. diversity; lower is more "
    "diverse, best close to ssim_intra_real (much higher suggests mode collapse)",
    "ssim_intra_real": "mean pairwise SSIM inside the real set: the reference level for ssim_intra_synthetic",
    "impulse_noise_synthetic": "fraction of pixels more than a quarter of the intensity range away from the median "
    "of their 3x3 neighbourhood (salt-and-pepper residual noise); lower is better, best close to impulse_noise_real",
    "impulse_noise_real": "the same fraction on the real images: the floor set by real fine structure",
    "chi2_intensity": "chi-square statistic of the histograms of per-image mean intensity, real vs synthetic; "
    "lower is better",
    "chi2_pvalue": f"p-value of that chi-square test; higher is better (p < {ALPHA}: intensity distributions differ)",
    "kl_divergence": "KL(real ‖ synthetic) of the pixel intensity histograms, in nats; lower is better",
    "num_real": "number of real images",
    "num_synthetic": "number of synthetic images",
    "expert_accuracy_real": "accuracy of the expert classifier on the real images (the attainable level); "
    "higher is better",
    "expert_accuracy_synthetic": "accuracy of the expert on the synthetic images against the class each was "
    "generated for; higher is better, ideally close to expert_accuracy_real",
    "chi2_class": "chi-square statistic of the expert's predicted classes on synthetic images vs the real class "
    "frequencies; lower is better",
    "chi2_class_pvalue": f"p-value of that class-frequency test; higher is better (p < {ALPHA}: class frequencies "
    "differ)",
    "kl_class": "KL(real ‖ synthetic) of the class frequencies (expert predictions on synthetic images), in nats; "
    "lower is better",
}


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class _FeatureSource(Protocol):
    """What the study needs of a feature extractor: ``extract(images, device)`` -> ``(N, D)`` features."""

    def extract(self, images: torch.Tensor, device: str | torch.device = ...) -> torch.Tensor: ...


def _has_extract(obj: object) -> TypeGuard[_FeatureSource]:
    """Whether ``obj`` has a callable ``extract`` (a :class:`_FeatureSource`)."""
    return callable(getattr(obj, "extract", None))


def _as_images(images: Any, name: str) -> torch.Tensor:
    """``(N, C, H, W)`` float32 CPU tensor of a tensor / array, after checking shape, size and finiteness."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray of images, got {type(images).__name__}.")
    images = images.detach().as_subclass(torch.Tensor).cpu().float()
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(images.shape)}.")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty: it holds no images.")
    if min(images.shape[1:]) < 1:
        raise ValueError(f"{name} has an empty channel or spatial axis, shape {tuple(images.shape)}.")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return images


def _as_labels(labels: Any, num_images: int, name: str, images_name: str) -> torch.Tensor | None:
    """1-D int64 tensor of non-negative class indices, one per image (``None`` stays ``None``)."""
    if labels is None:
        return None
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices (N,), got shape {arr.shape}.")
    if arr.shape[0] != num_images:
        raise ValueError(f"{name} has {arr.shape[0]} labels but {images_name} has {num_images} images.")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise ValueError(f"{name} must hold integer class indices, got non-integer values.")
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if (arr < 0).any():
        raise ValueError(f"{name} must hold non-negative class indices, got {int(arr.min())}.")
    return torch.from_numpy(arr)


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


class SyntheticImageStudy:
    """Score a set of synthetic images against real ones in one call, and write a JSON + Markdown report.

    The evaluation gathers, for images in ``[-1, 1]``:

    - feature-distribution metrics, with a ``feature_extractor``: the Fréchet distance (FID; Heusel et al. 2017,
      "GANs trained by a two time-scale update rule converge to a local Nash equilibrium"), the kernel distance
      (KID; Bińkowski et al. 2018, "Demystifying MMD GANs"), precision and recall (Kynkäänniemi et al. 2019,
      "Improved precision and recall metric for assessing generative models") and density and coverage (Naeem et
      al. 2020, "Reliable fidelity and diversity metrics for generative models"). Values depend on the extractor:
      compare them only between runs that use the same one (``extractor_name`` is written in the report);
    - diversity: mean pairwise SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, "Image quality assessment: from error
      visibility to structural similarity") inside each set, per class when labels are given (then the main key is
      the unweighted mean over the classes with at least 2 images);
    - intensity statistics: Pearson's chi-square test of homogeneity on the histograms of per-image mean intensity
      (``chi2_intensity``, ``chi2_pvalue``: one sample per image, so the p-value is meaningful) and ``KL(real ‖
      synthetic)`` of the pixel intensity histograms (``kl_divergence``), both with ``histogram_bins`` bins over
      ``[-1, 1]``;
    - with an ``expert`` classifier and labels: its accuracy on real images (``real_labels``) and on synthetic
      images against the class each was generated for (``synthetic_labels``), and a class-frequency test of its
      predicted classes on the synthetic images against ``real_labels`` (``chi2_class``, ``chi2_class_pvalue``,
      ``kl_class``);
    - with ``reference_sets``: a cross-set table of mean SSIM over random pairs (``ssim_cross_<a>_vs_<b>``) for
      synthetic vs real, synthetic vs each reference, real vs each reference and between references, and
      ``fid_<name>`` (real set vs each reference) with a feature extractor, which gives the FID a scale, and
      ``fid_<a>_vs_<b>`` for the other pairs of the table (synthetic vs each reference, between references).

    :meth:`run` returns a flat dictionary of JSON-safe values (NaN and infinities as ``None``). With ``output_dir``
    it also writes ``metrics.json`` (sorted keys), ``report.md``, ``real_grid.png``, ``synthetic_grid.png``,
    ``intensity_histogram.png`` and, with an expert and the corresponding labels, ``confusion_real.png`` /
    ``confusion_synthetic.png``; the folder is created and nothing is deleted (files of these names are
    overwritten).

    Args:
        real_images: ``(N, C, H, W)`` real images in ``[-1, 1]`` (tensor or array), N >= 2, H and W >= 11 (SSIM
            window).
        synthetic_images: ``(M, C, H, W)`` synthetic images with the same C, H, W, M >= 2.
        real_labels: optional ``(N,)`` class indices of the real images.
        synthetic_labels: optional ``(M,)`` class indices the synthetic images were generated for.
        class_names: names of the classes (index ``i`` → ``class_names[i]``); default ``"0"``, ``"1"``, ...
        feature_extractor: a :class:`~medsyn_monai.networks.nets.FeatureExtractor` (or any object with
            ``extract(images, device) -> (N, D)``); a bare ``nn.Module`` is wrapped in a ``FeatureExtractor``.
            ``None``: no FID / KID / precision-recall.
        expert: classifier returning logits ``(B, num_classes)`` for images in ``[-1, 1]``, e.g. an
            :class:`~medsyn_monai.networks.nets.ExpertClassifier`; set to ``eval()`` while classifying.
        reference_sets: optional ``{name: (K, C, H, W) images}``, e.g. ``{"real_train": ..., "out_of_distribution":
            ...}``; names must be non-empty and differ from ``"real"`` and ``"synthetic"``.
        output_dir: folder for the report files (``None``: nothing written).
        kid_subsets: number of random subsets of the KID.
        kid_subset_size: features per set in each KID subset (capped at the smaller set).
        nearest_k: ``k`` of the k-NN balls of precision / recall / density / coverage; every set needs more than
            ``k`` images when a feature extractor is given.
        ssim_pairs: random image pairs per SSIM mean (all pairs when there are fewer).
        histogram_bins: bins of the intensity histograms (>= 2).
        seed: seed of the KID subsets and of the SSIM pair sampling.
        device: device of the feature extractor and the expert.
        extractor_name: name of the feature extractor written in the report (e.g. ``"expert"``, ``"inception"``).

    Raises:
        ValueError: empty sets or fewer than 2 images, wrong or mismatching shapes (channels / spatial size), images
            smaller than the SSIM window, labels of the wrong length or not integer, labels outside
            ``class_names``, an expert with another number of classes than ``class_names``, fewer than
            ``nearest_k + 1`` (or 2, for FID) images per set with a feature extractor, bad reference-set names or
            bad numeric options.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> real = torch.rand(8, 1, 16, 16, generator=g) * 2 - 1
        >>> metrics = SyntheticImageStudy(real, real.clone(), ssim_pairs=10).run()
        >>> metrics["ssim_intra_real"] == metrics["ssim_intra_synthetic"], metrics["chi2_pvalue"]
        (True, 1.0)
    """

    def __init__(
        self,
        real_images: torch.Tensor | np.ndarray,
        synthetic_images: torch.Tensor | np.ndarray,
        real_labels: torch.Tensor | np.ndarray | Sequence[int] | None = None,
        synthetic_labels: torch.Tensor | np.ndarray | Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        feature_extractor: FeatureExtractor | nn.Module | None = None,
        expert: nn.Module | None = None,
        reference_sets: Mapping[str, torch.Tensor | np.ndarray] | None = None,
        output_dir: str | Path | None = None,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        nearest_k: int = 5,
        ssim_pairs: int = 500,
        histogram_bins: int = 64,
        seed: int = 0,
        device: str | torch.device = "cpu",
        extractor_name: str = "expert",
    ) -> None:
        self.logger = logging.getLogger(__name__)
        self.kid = KernelInceptionDistance(num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
        self.prdc = PrecisionRecallDensityCoverage(nearest_k=nearest_k)
        self.ssim_pairs = _positive_int(ssim_pairs, "ssim_pairs")
        self.histogram_bins = _positive_int(histogram_bins, "histogram_bins", minimum=2)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.extractor_name = str(extractor_name)
        self.output_dir = Path(output_dir) if output_dir is not None else None

        self.real_images = _as_images(real_images, "real_images")
        self.synthetic_images = _as_images(synthetic_images, "synthetic_images")
        self._check_same_shape("synthetic_images", self.synthetic_images)
        spatial = tuple(self.real_images.shape[2:])
        if min(spatial) < _SSIM_WINDOW:
            raise ValueError(
                f"images must be at least {_SSIM_WINDOW} px per side for SSIM (window {_SSIM_WINDOW}), got {spatial}."
            )
        for name, images in (("real_images", self.real_images), ("synthetic_images", self.synthetic_images)):
            if images.shape[0] < 2:
                raise ValueError(
                    f"{name} has {images.shape[0]} image; at least 2 per set are needed (FID, SSIM diversity and the "
                    "intensity test are undefined for one image)."
                )

        self.reference_sets: dict[str, torch.Tensor] = {}
        for name, reference in (reference_sets or {}).items():
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"reference set names must be non-empty strings, got {name!r}.")
            if name in _SET_NAMES:
                raise ValueError(f"reference set name {name!r} is reserved; use another than {list(_SET_NAMES)}.")
            tensor = _as_images(reference, f"reference_sets[{name!r}]")
            self._check_same_shape(f"reference_sets[{name!r}]", tensor)
            self.reference_sets[name] = tensor

        self.real_labels = _as_labels(real_labels, self.real_images.shape[0], "real_labels", "real_images")
        self.synthetic_labels = _as_labels(
            synthetic_labels, self.synthetic_images.shape[0], "synthetic_labels", "synthetic_images"
        )
        given = [lab for lab in (self.real_labels, self.synthetic_labels) if lab is not None]
        max_label = max(int(lab.max()) for lab in given) if given else -1

        self.class_names: list[str] | None = None
        if class_names is not None:
            if isinstance(class_names, str):
                raise ValueError(f"class_names must be a sequence of names, got the string {class_names!r}.")
            self.class_names = [str(c) for c in class_names]
            if not self.class_names:
                raise ValueError("class_names is empty.")
            if len(set(self.class_names)) != len(self.class_names):
                raise ValueError(f"class_names must be unique, got {self.class_names}.")
            if max_label >= len(self.class_names):
                raise ValueError(
                    f"labels go up to {max_label} but class_names has {len(self.class_names)} names "
                    f"(valid indices 0..{len(self.class_names) - 1})."
                )

        if expert is not None and not callable(expert):
            raise ValueError(f"expert must be a module returning logits, got {type(expert).__name__}.")
        self.expert = expert
        self.num_classes: int | None = len(self.class_names) if self.class_names is not None else None
        expert_classes = getattr(expert, "num_classes", None) if expert is not None else None
        if isinstance(expert_classes, int) and not isinstance(expert_classes, bool):
            if self.num_classes is not None and expert_classes != self.num_classes:
                raise ValueError(
                    f"the expert has {expert_classes} classes but class_names has {self.num_classes} names."
                )
            if max_label >= expert_classes:
                raise ValueError(f"labels go up to {max_label} but the expert has only {expert_classes} classes.")
            self.num_classes = expert_classes
        if self.num_classes is None and expert is None and max_label >= 0:
            self.num_classes = max(2, max_label + 1)

        self.feature_extractor: _FeatureSource | None
        if feature_extractor is None or _has_extract(feature_extractor):
            self.feature_extractor = feature_extractor
        else:
            if not isinstance(feature_extractor, nn.Module):
                raise ValueError(
                    "feature_extractor must be a FeatureExtractor (or have an extract(images, device) method) or an "
                    f"nn.Module, got {type(feature_extractor).__name__}."
                )
            self.feature_extractor = FeatureExtractor(feature_extractor)
        if feature_extractor is not None:
            sets = {"real_images": self.real_images, "synthetic_images": self.synthetic_images}
            sets.update({f"reference_sets[{k!r}]": v for k, v in self.reference_sets.items()})
            for name, images in sets.items():
                if images.shape[0] < 2:
                    raise ValueError(f"FID needs at least 2 images per set; {name} has {images.shape[0]}.")
            for name in ("real_images", "synthetic_images"):
                if sets[name].shape[0] <= nearest_k:
                    raise ValueError(
                        f"precision/recall with nearest_k={nearest_k} needs more than {nearest_k} images per set; "
                        f"{name} has {sets[name].shape[0]}: lower nearest_k or add images."
                    )

        refs = list(self.reference_sets)
        self.cross_pairs: list[tuple[str, str]] = []
        if refs:
            self.cross_pairs = [("synthetic", "real")] + [("synthetic", r) for r in refs] + [("real", r) for r in refs]
            self.cross_pairs += [(a, b) for i, a in enumerate(refs) for b in refs[i + 1 :]]
        for name, images in (("real_images", self.real_images), ("synthetic_images", self.synthetic_images)):
            lo, hi = float(images.min()), float(images.max())
            if lo < _VALUE_RANGE[0] - 1e-3 or hi > _VALUE_RANGE[1] + 1e-3:
                self.logger.warning(f"{name} spans [{lo:.3g}, {hi:.3g}], outside [-1, 1]: values are clipped.")

    def _check_same_shape(self, name: str, images: torch.Tensor) -> None:
        real = self.real_images
        if images.shape[1] != real.shape[1]:
            raise ValueError(
                f"{name} has {images.shape[1]} channels but real_images has {real.shape[1]}: shapes must match."
            )
        if images.shape[2:] != real.shape[2:]:
            raise ValueError(
                f"{name} has spatial size {tuple(images.shape[2:])} but real_images has {tuple(real.shape[2:])}: "
                "resize them to one size first."
            )

    def class_name(self, index: int) -> str:
        """Name of class ``index`` (``class_names[index]``, or the index as a string)."""
        if self.class_names is not None:
            return self.class_names[index]
        return str(index)

    # ------------------------------------------------------------------ metrics

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        assert self.feature_extractor is not None
        return self.feature_extractor.extract(images, device=self.device).double().cpu()

    @torch.no_grad()
    def _classify(self, images: torch.Tensor) -> torch.Tensor:
        """Expert predictions (class indices) for ``images``."""
        expert = self.expert
        assert expert is not None  # called only when an expert was given
        was_training = getattr(expert, "training", False)
        if isinstance(expert, nn.Module):
            expert.to(self.device).eval()
        try:
            preds = []
            for start in range(0, images.shape[0], _EXPERT_BATCH):
                logits = expert(images[start : start + _EXPERT_BATCH].to(self.device))
                if isinstance(logits, (tuple, list)):
                    logits = logits[0]
                if logits.ndim != 2 or logits.shape[1] < 2:
                    raise ValueError(f"the expert must return logits (B, num_classes >= 2), got {tuple(logits.shape)}.")
                if self.num_classes is not None and logits.shape[1] != self.num_classes:
                    raise ValueError(
                        f"the expert returns {logits.shape[1]} logits but there are {self.num_classes} classes."
                    )
                preds.append(logits.argmax(dim=1).cpu())
        finally:
            if isinstance(expert, nn.Module) and was_training:
                expert.train()
        if self.num_classes is None:  # expert without a num_classes attribute: take it from its logits
            self.num_classes = int(logits.shape[1])
            given = [lab for lab in (self.real_labels, self.synthetic_labels) if lab is not None]
            if given and max(int(lab.max()) for lab in given) >= self.num_classes:
                raise ValueError(f"labels go beyond the expert's {self.num_classes} classes.")
        return torch.cat(preds)

    def _intra_ssim(self, set_name: str, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
        key = f"ssim_intra_{set_name}"
        if labels is None:
            return {key: intra_set_ssim(images, num_pairs=self.ssim_pairs, seed=self.seed)}
        result: dict[str, float] = {}
        values = []
        for c in sorted(set(labels.tolist())):
            members = images[labels == c]
            if members.shape[0] < 2:
                self.logger.warning(f"{set_name} class {self.class_name(c)!r} has 1 image: no intra-class SSIM.")
                result[f"{key}_{self.class_name(c)}"] = float("nan")
                continue
            value = intra_set_ssim(members, num_pairs=self.ssim_pairs, seed=self.seed)
            result[f"{key}_{self.class_name(c)}"] = value
            values.append(value)
        return {key: float(np.mean(values)) if values else float("nan"), **result}

    def _pixel_histogram(self, images: torch.Tensor) -> np.ndarray:
        values = images.double().clamp(*_VALUE_RANGE).reshape(-1).numpy()
        return np.histogram(values, bins=self.histogram_bins, range=_VALUE_RANGE)[0].astype(np.float64)

    def run(self, extra_metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Compute every metric the inputs allow and, with ``output_dir``, write the report files.

        Args:
            extra_metrics: scalar metrics computed elsewhere (e.g. the flat scalars of
                :class:`~medsyn_monai.apps.evaluation.GenerationAccuracyStudy`) to include in ``metrics.json`` and the
                report's table.

        Returns:
            the flat metrics dictionary (see the class description); floats are Python floats, undefined values
            ``None``.
        """
        real, synthetic = self.real_images, self.synthetic_images
        metrics: dict[str, Any] = {"num_real": int(real.shape[0]), "num_synthetic": int(synthetic.shape[0])}
        info: dict[str, Any] = {}

        real_features = None
        if self.feature_extractor is not None:
            self.logger.info("extracting features")
            real_features = self._features(real)
            synthetic_features = self._features(synthetic)
            info["feature_dim"] = int(real_features.shape[1])
            metrics["fid"] = frechet_distance(real_features, synthetic_features)
            metrics["kid_mean"], metrics["kid_std"] = self.kid(real_features, synthetic_features)
            metrics.update(self.prdc(real_features, synthetic_features))

        self.logger.info("computing SSIM diversity")
        metrics.update(self._intra_ssim("synthetic", synthetic, self.synthetic_labels))
        metrics.update(self._intra_ssim("real", real, self.real_labels))

        for name, images in (("synthetic", synthetic), ("real", real)):
            metrics[f"impulse_noise_{name}"] = float(impulse_noise_rate(images).mean())
        test = intensity_histogram_test(
            real, synthetic, bins=self.histogram_bins, value_range=_VALUE_RANGE, unit=HistogramUnit.IMAGE
        )
        metrics["chi2_intensity"], metrics["chi2_pvalue"] = test["chi2"], test["chi2_pvalue"]
        pixel_counts = {"real": self._pixel_histogram(real), "synthetic": self._pixel_histogram(synthetic)}
        metrics["kl_divergence"] = kl_divergence(pixel_counts["real"], pixel_counts["synthetic"])

        confusions: dict[str, list[list[int]]] = {}
        if self.expert is not None and (self.real_labels is not None or self.synthetic_labels is not None):
            self.logger.info("classifying with the expert")
            synthetic_pred = self._classify(synthetic)
            num_classes = self.num_classes
            assert num_classes is not None  # set by _classify from the expert's logits at the latest
            names = [self.class_name(c) for c in range(num_classes)]
            if self.real_labels is not None:
                report = classification_report(
                    self.real_labels, self._classify(real), num_classes=num_classes, class_names=names
                )
                metrics["expert_accuracy_real"] = report["accuracy"]
                confusions["real"] = report["confusion_matrix"]
            if self.synthetic_labels is not None:
                report = classification_report(
                    self.synthetic_labels, synthetic_pred, num_classes=num_classes, class_names=names
                )
                metrics["expert_accuracy_synthetic"] = report["accuracy"]
                confusions["synthetic"] = report["confusion_matrix"]
            if self.real_labels is not None:
                freq = class_frequency_test(self.real_labels, synthetic_pred, num_classes=num_classes)
                metrics["chi2_class"] = freq["chi2"]
                metrics["chi2_class_pvalue"] = freq["chi2_pvalue"]
                metrics["kl_class"] = freq["kl_divergence"]
        elif self.expert is not None:
            self.logger.warning("an expert was given without labels: expert metrics are skipped.")

        if self.cross_pairs:
            self.logger.info("computing cross-set SSIM")
            sets = {"synthetic": synthetic, "real": real, **self.reference_sets}
            for a, b in self.cross_pairs:
                metrics[f"ssim_cross_{a}_vs_{b}"] = cross_set_ssim(
                    sets[a], sets[b], num_pairs=self.ssim_pairs, seed=self.seed
                )
            if real_features is not None:
                features = {"real": real_features, "synthetic": synthetic_features}
                features.update({name: self._features(images) for name, images in self.reference_sets.items()})
                for name in self.reference_sets:
                    metrics[f"fid_{name}"] = frechet_distance(real_features, features[name])
                for a, b in self.cross_pairs:  # the other pairs of the cross-set table
                    if a != "real" and (a, b) != ("synthetic", "real"):
                        metrics[f"fid_{a}_vs_{b}"] = frechet_distance(features[a], features[b])

        for key, value in (extra_metrics or {}).items():
            if isinstance(value, (int, float, np.floating, np.integer)) or value is None:
                metrics[str(key)] = value
        metrics = {key: json_ready(value) for key, value in metrics.items()}
        if self.output_dir is not None:
            self._write(metrics, info, pixel_counts, confusions)
        return metrics

    # ------------------------------------------------------------------ outputs

    def _grid_images(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Up to 64 images for a grid: one row of up to 8 per class when there are at most 8 classes."""
        if images.shape[1] not in (1, 3):
            images = images[:, :1]
        if labels is None:
            return images[:_GRID_MAX]
        classes = sorted(set(labels.tolist()))
        if len(classes) > _GRID_MAX // _GRID_ROW:
            order = torch.argsort(labels, stable=True)
            return images[order[:_GRID_MAX]]
        rows = []
        for c in classes:
            row = images[labels == c][:_GRID_ROW]
            blank = torch.full((_GRID_ROW - row.shape[0], *row.shape[1:]), _VALUE_RANGE[0])
            rows.append(torch.cat([row, blank]))
        return torch.cat(rows)

    def meaning(self, key: str) -> str:
        """One-line explanation of metric ``key``, with the direction that is better."""
        if key in _MEANINGS:
            return _MEANINGS[key]
        for set_name in _SET_NAMES:
            prefix = f"ssim_intra_{set_name}_"
            if key.startswith(prefix):
                return (
                    f"mean pairwise SSIM inside class {key[len(prefix) :]!r} of the {set_name} set; lower is more "
                    "diverse" + (", best close to the real value" if set_name == "synthetic" else " (reference level)")
                )
        for a, b in self.cross_pairs:
            if key == f"ssim_cross_{a}_vs_{b}":
                return f"mean SSIM between {a} and {b} images (random pairs); higher means more similar sets"
        for a, b in self.cross_pairs:
            if key == f"fid_{a}_vs_{b}":
                return f"FID between the {a} and {b} sets (same extractor); lower means more similar sets"
        for name in self.reference_sets:
            if key == f"fid_{name}":
                return (
                    f"FID between the real set and the reference set {name!r} (same extractor), a scale for fid; "
                    "lower means more similar sets"
                )
        return ""

    @staticmethod
    def _interpret(pvalue: float | None, what: str) -> str:
        if pvalue is None:
            return "the p-value is undefined."
        if pvalue < ALPHA:
            return f"p = {pvalue:.3g} < {ALPHA}: the {what} differ significantly."
        return (
            f"p = {pvalue:.3g} ≥ {ALPHA}: no significant difference between the {what} was detected "
            "(which does not prove they are equal)."
        )

    def _write(
        self,
        metrics: dict[str, Any],
        info: dict[str, Any],
        pixel_counts: dict[str, np.ndarray],
        confusions: dict[str, list[list[int]]],
    ) -> None:
        out = self.output_dir
        assert out is not None
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", metrics, sort_keys=True)
        save_grid_png(
            make_grid(self._grid_images(self.real_images, self.real_labels), nrow=_GRID_ROW), out / "real_grid.png"
        )
        save_grid_png(
            make_grid(self._grid_images(self.synthetic_images, self.synthetic_labels), nrow=_GRID_ROW),
            out / "synthetic_grid.png",
        )
        save_histogram_png(
            pixel_counts,
            out / "intensity_histogram.png",
            value_range=_VALUE_RANGE,
            title="Pixel intensities: real vs synthetic",
        )
        figures = [
            ("Real images", "real_grid.png"),
            ("Synthetic images", "synthetic_grid.png"),
            ("Pixel intensity histograms", "intensity_histogram.png"),
        ]
        names = [self.class_name(c) for c in range(int(self.num_classes or 0))]
        for set_name in ("synthetic", "real"):
            if set_name in confusions:
                filename = f"confusion_{set_name}.png"
                title = (
                    "expert on synthetic images (rows: class asked for)"
                    if set_name == "synthetic"
                    else "expert on real images"
                )
                save_confusion_matrix_png(confusions[set_name], names, out / filename, title=title)
                figures.append((f"Expert confusion matrix, {set_name} images", filename))
        (out / "report.md").write_text(self._report(metrics, info, figures), encoding="utf-8")
        self.logger.info(f"evaluation report written to {out}")

    def _report(self, metrics: dict[str, Any], info: dict[str, Any], figures: list[tuple[str, str]]) -> str:
        real, synthetic = self.real_images, self.synthetic_images
        c, size = real.shape[1], " × ".join(str(s) for s in real.shape[2:])
        lines = [
            "# Synthetic image evaluation",
            "",
            f"- Real images: {real.shape[0]} ({c} channel{'s' if c > 1 else ''}, {size} px)"
            + (", labelled" if self.real_labels is not None else ""),
            f"- Synthetic images: {synthetic.shape[0]}"
            + (", labelled with the class they were generated for" if self.synthetic_labels is not None else ""),
        ]
        if self.num_classes is not None and (self.real_labels is not None or self.synthetic_labels is not None):
            lines.append(f"- Classes: {', '.join(self.class_name(i) for i in range(self.num_classes))}")
        if self.reference_sets:
            refs = ", ".join(f"{name} ({images.shape[0]})" for name, images in self.reference_sets.items())
            lines.append(f"- Reference sets: {refs}")
        lines += ["", "## Metrics", "", "| metric | value | meaning |", "|---|---|---|"]
        for key, value in metrics.items():
            lines.append(f"| `{key}` | {_format(value)} | {self.meaning(key)} |")

        lines += ["", "## Feature extractor", ""]
        if self.feature_extractor is not None:
            model = getattr(self.feature_extractor, "model", self.feature_extractor)
            dim = f", {info['feature_dim']}-dimensional features" if "feature_dim" in info else ""
            lines.append(
                f"Features: **{self.extractor_name}** (`{type(model).__name__}`{dim}); KID with "
                f"{self.kid.num_subsets} subsets of up to {self.kid.subset_size}, precision / recall / density / "
                f"coverage with k = {self.prdc.nearest_k}."
            )
        else:
            lines.append(
                "No feature extractor was given: FID, KID and precision / recall / density / coverage were not "
                "computed."
            )
        lines += [
            "",
            "Caveat: FID, KID and precision / recall / density / coverage depend on the feature extractor, so FID/KID "
            "values compare only within one extractor: compare runs that use the same one "
            f"(here `{self.extractor_name}`), never with numbers computed with another network (e.g. published "
            "Inception-v3 FIDs). FID is biased upwards for small sets: compare sets of equal size.",
            "",
            f"## Statistical tests (α = {ALPHA})",
            "",
            f"- Intensity: chi-square test of homogeneity on the histograms of per-image mean intensity "
            f"({self.histogram_bins} bins over [-1, 1]), χ² = {_format(metrics['chi2_intensity'])}; "
            + self._interpret(metrics["chi2_pvalue"], "intensity distributions of real and synthetic images"),
        ]
        if "chi2_class_pvalue" in metrics:
            lines.append(
                "- Class frequencies: chi-square test of the expert's predicted classes on the synthetic images "
                f"against the real labels, χ² = {_format(metrics['chi2_class'])}; "
                + self._interpret(metrics["chi2_class_pvalue"], "class frequencies of real and synthetic images")
            )

        if self.cross_pairs:
            lines += ["", "## Cross-set similarity", "", "| set A | set B | mean SSIM | FID |", "|---|---|---|---|"]
            for a, b in self.cross_pairs:
                if (a, b) == ("synthetic", "real"):
                    fid_key = "fid"
                else:
                    fid_key = f"fid_{b}" if a == "real" else f"fid_{a}_vs_{b}"
                fid_text = _format(metrics.get(fid_key)) if fid_key in metrics else "n/a"
                lines.append(f"| {a} | {b} | {_format(metrics[f'ssim_cross_{a}_vs_{b}'])} | {fid_text} |")
            lines += [
                "",
                "Synthetic images should be about as similar to the real sets as the real sets are to each other, and "
                "clearly less similar to out-of-distribution references.",
            ]

        lines += ["", "## Figures", ""]
        for caption, filename in figures:
            lines += [f"### {caption}", "", f"![{caption}]({filename})", ""]
        lines += [
            "## References",
            "",
            "- Heusel et al. 2017, GANs trained by a two time-scale update rule converge to a local Nash equilibrium "
            "(FID).",
            "- Bińkowski et al. 2018, Demystifying MMD GANs (KID).",
            "- Kynkäänniemi et al. 2019, Improved precision and recall metric for assessing generative models.",
            "- Naeem et al. 2020, Reliable fidelity and diversity metrics for generative models (density, coverage).",
            "- Wang, Bovik, Sheikh & Simoncelli 2004, Image quality assessment: from error visibility to structural "
            "similarity (SSIM).",
            "",
        ]
        return "\n".join(lines)
