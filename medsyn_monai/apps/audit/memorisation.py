"""Memorisation audit: is any synthetic image closer to a training image than real held-out images ever are?"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsyn_monai.apps.generation import DiffusionSampler
from medsyn_monai.data import DataQualityReport, ImageCollection, SliceDataset, image_names
from medsyn_monai.metrics import NearestNeighbours
from medsyn_monai.networks.nets import ExpertClassifier, FeatureExtractor
from medsyn_monai.utils.image_grid import make_grid, save_grid_png
from medsyn_monai.utils.io import write_csv, write_json
from medsyn_monai.visualize import save_histogram_png

__all__ = ["MemorisationAudit", "split_records", "QUANTILES"]

logger = logging.getLogger(__name__)

#: percentiles of the distance distributions written to ``audit.json``
QUANTILES = (0.0, 1.0, 5.0, 25.0, 50.0, 75.0, 95.0)
#: the two measures (``<measure>_distance``)
MEASURES = ("pixel", "feature")


def split_records(
    collection: ImageCollection | None, folder: str | os.PathLike | None, *splits: str
) -> list[dict[str, Any]]:
    """The records to audit: every image of ``folder`` when given (any folder the loaders read: class folders, a CSV
    manifest, an export), else those of ``splits`` of ``collection`` (e.g. the model's training split).

    Raises:
        ValueError: neither a folder nor a collection; no image found.
    """
    if folder:
        records = ImageCollection(folder, val_fraction=0.0, test_fraction=0.0).data()
        where = f"{folder}"
    elif collection is not None:
        records = [r for split in splits for r in collection.data(split)]
        where = f"the {'/'.join(splits)} split(s) of {collection.root}"
    else:
        raise ValueError("split_records needs a folder or a collection.")
    if not records:
        raise ValueError(f"no image to audit in {where}: give a folder of images (or a data set with these splits).")
    return records


def _quantiles(values: torch.Tensor) -> dict[str, float]:
    v = values.double().numpy()
    return {f"p{q:g}": float(np.percentile(v, q)) for q in QUANTILES} | {"mean": float(v.mean())}


class MemorisationAudit:
    """For each synthetic image, its nearest training image by (a) expert feature cosine distance and (b) aligned
    pixel correlation distance (:class:`~medsyn_monai.metrics.NearestNeighbours`); the reference is the same
    distance from real held-out images to the training set. A synthetic image closer to a training image than the
    ``flag_percentile``-th percentile of the held-out→train distances, under either measure, is flagged as a
    possible copy (Carlini et al. 2023; Somepalli et al. 2023: a generated image nearer to a training image than
    real unseen images come is evidence of memorisation, not of generalisation).

    With the default 1st percentile, about 1 % of images that behave like new real images are flagged by each
    measure by chance (so up to ~2 % for both together): a ``memorisation_rate`` near 0.01–0.02 means no evidence of
    copying; a clearly larger rate, or flagged pairs that look alike (``closest_pairs.png``), means the model
    reproduces training images.

    The same pass audits the real data: degenerate images and exact duplicates within and across the splits
    (:class:`~medsyn_monai.data.DataQualityReport`) and near duplicates of held-out images in the training set
    (pixel distance ≤ ``near_duplicate_distance``).

    Writes to ``output_dir``: ``audit.json`` (``memorisation_rate``, thresholds, distance quantiles of
    synthetic→train and held-out→train per measure, the data audit), ``flagged.csv`` (``synthetic_path``,
    ``train_path``, both distances, the measure(s) that flagged it), ``closest_pairs.png`` (the closest synthetic /
    training pairs side by side, left synthetic, right training) and ``distances_<measure>.png`` (histograms of both
    distance distributions).

    Args:
        output_dir: where the reports go (created).
        feature_extractor: features for measure (a); ``None``: pixel measure only.
        expert_ckpt: alternatively, the expert checkpoint to take features from (used when the file exists).
        flag_percentile: percentile (0–100) of the held-out→train distances below which a synthetic image is flagged.
        max_shift: pixel shifts searched by the pixel measure (copies moved by up to this many pixels match).
        near_duplicate_distance: pixel distance at or below which a held-out image counts as a near duplicate of a
            training image.
        num_pairs_shown: pairs in ``closest_pairs.png``.
        device: where features are computed.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        feature_extractor: FeatureExtractor | None = None,
        expert_ckpt: str | os.PathLike | None = None,
        flag_percentile: float = 1.0,
        max_shift: int = 2,
        near_duplicate_distance: float = 0.01,
        num_pairs_shown: int = 8,
        device: str | torch.device = "cpu",
    ) -> None:
        if not 0.0 <= float(flag_percentile) <= 100.0:
            raise ValueError(f"flag_percentile must be in [0, 100], got {flag_percentile}.")
        if feature_extractor is None and expert_ckpt is not None and Path(expert_ckpt).is_file():
            feature_extractor = FeatureExtractor(ExpertClassifier.from_checkpoint(Path(expert_ckpt)))
        elif feature_extractor is None:
            logger.warning(
                f"no expert checkpoint{f' at {expert_ckpt}' if expert_ckpt else ''}: the audit uses the pixel "
                "measure only (train the expert with train_expert.json for the feature measure too)."
            )
        self.output_dir = Path(output_dir)
        self.feature_extractor = feature_extractor
        self.flag_percentile = float(flag_percentile)
        self.neighbours = NearestNeighbours(max_shift=max_shift, flips=True)
        self.near_duplicate_distance = float(near_duplicate_distance)
        self.num_pairs_shown = int(num_pairs_shown)
        self.device = torch.device(device)

    def _features(self, images: torch.Tensor) -> torch.Tensor | None:
        if self.feature_extractor is None:
            return None
        self.feature_extractor.to(self.device)
        return self.feature_extractor.extract(images, device=self.device).cpu()

    @staticmethod
    def _set(data: Any, name: str) -> tuple[torch.Tensor, list[str]]:
        """``(images, names)`` of a SliceDataset, or of an ``(images, names)`` pair."""
        if isinstance(data, tuple):
            images, names = data
            names = list(names)
        else:
            images, names = data.images, image_names(data)
        images = torch.as_tensor(images).float()
        if len(images) == 0:
            raise ValueError(f"the {name} set holds no image.")
        return images, names

    @staticmethod
    def generated(sampler: DiffusionSampler, num_samples: int) -> tuple[torch.Tensor, list[str]]:
        """``num_samples`` images of a trained model (classes in turn) and their names (``generated_<n>[_<class>]``)."""
        sampler.load_weights()
        images, labels = sampler.generate(num_samples=int(num_samples))
        names = [f"generated_{i:05d}" for i in range(len(images))]
        if labels is not None and sampler.class_names is not None:
            names = [f"{n}_{sampler.class_names[int(c)]}" for n, c in zip(names, labels, strict=True)]
        return images, names

    def run_on(
        self,
        train_set: SliceDataset,
        holdout_records: Sequence[dict[str, Any]],
        synthetic_records: Sequence[dict[str, Any]] | None = None,
        sampler_args: dict[str, Any] | None = None,
        num_samples: int = 200,
    ) -> dict[str, Any]:
        """What ``audit.json`` runs: the held-out records and the synthetic images (the records of a folder, loaded
        like the training set, or else ``num_samples`` images generated by
        ``DiffusionSampler.from_checkpoint(**sampler_args)``, built only then) audited against ``train_set``."""
        holdout = train_set.with_data(holdout_records)
        if synthetic_records:
            synthetic: Any = train_set.with_data(synthetic_records)
        elif sampler_args is not None:
            synthetic = self.generated(DiffusionSampler.from_checkpoint(**sampler_args), num_samples)
        else:
            raise ValueError("nothing to audit: give synthetic_dir (a folder of images) or a trained model.")
        return self.run(synthetic, train_set, holdout)

    def run(self, synthetic: Any, train: Any, holdout: Any) -> dict[str, Any]:
        """Audit ``synthetic`` against ``train`` with ``holdout`` as the reference; each set is a
        :class:`~medsyn_monai.data.SliceDataset` or an ``(images (N, C, H, W) in [-1, 1], names)`` pair. Returns the
        content of ``audit.json``."""
        syn, syn_names = self._set(synthetic, "synthetic")
        trn, trn_names = self._set(train, "training")
        hld, hld_names = self._set(holdout, "held-out")
        shapes = {tuple(x.shape[1:]) for x in (syn, trn, hld)}
        if len(shapes) != 1:
            raise ValueError(
                f"the synthetic, training and held-out images differ in shape {sorted(shapes)}: audit images of the "
                "model's size (synthetic_dir images are resized by the bundle's preprocessing)."
            )
        fs, ft, fh = self._features(syn), self._features(trn), self._features(hld)
        to_train = self.neighbours(syn, trn, fs, ft)
        reference = self.neighbours(hld, trn, fh, ft)
        measures = [m for m in MEASURES if f"{m}_distance" in to_train]
        q = self.flag_percentile
        thresholds = {m: float(np.percentile(reference[f"{m}_distance"].numpy(), q)) for m in measures}
        flagged_by = {m: to_train[f"{m}_distance"] <= thresholds[m] for m in measures}
        flagged = torch.stack(list(flagged_by.values())).any(dim=0)

        rows = []
        for i in torch.nonzero(flagged).flatten().tolist():
            nearest = {m: int(to_train[f"{m}_index"][i]) for m in measures}
            first = next(m for m in measures if flagged_by[m][i])
            row = {"synthetic_path": syn_names[i], "train_path": trn_names[nearest[first]],
                   "pixel_distance": float(to_train["pixel_distance"][i]),
                   "feature_distance": float(to_train["feature_distance"][i]) if "feature" in measures else "",
                   "flagged_by": "+".join(m for m in measures if flagged_by[m][i])}  # fmt: skip
            rows.append(row)
        near = reference["pixel_distance"] <= self.near_duplicate_distance
        quality = DataQualityReport({"train": (trn, trn_names), "holdout": (hld, hld_names)}).warn("audited data")
        data_audit = quality.summary()
        data_audit["near_duplicates_holdout_in_train"] = int(near.sum())
        data_audit["near_duplicate_pairs"] = [
            {
                "holdout": hld_names[i],
                "train": trn_names[int(reference["pixel_index"][i])],
                "pixel_distance": float(reference["pixel_distance"][i]),
            }  # fmt: skip
            for i in torch.nonzero(near).flatten().tolist()
        ]
        described = {
            "pixel": f"1 - normalised correlation, best over shifts of up to {self.neighbours.max_shift} px and flips "
            "(invariant to brightness/contrast)",
            "feature": "1 - cosine similarity of the expert's pooled features",
        }
        result: dict[str, Any] = {
            "memorisation_rate": float(flagged.double().mean()),
            "num_flagged": int(flagged.sum()),
            "flagged_by_measure": {m: int(flagged_by[m].sum()) for m in measures},
            "num_synthetic": len(syn),
            "num_train": len(trn),
            "num_holdout": len(hld),
            "flag_percentile": self.flag_percentile,
            "thresholds": thresholds,
            "measures": {m: described[m] for m in measures},
            "synthetic_to_train": {m: _quantiles(to_train[f"{m}_distance"]) for m in measures},
            "holdout_to_train": {m: _quantiles(reference[f"{m}_distance"]) for m in measures},
            "data": data_audit,
        }
        self._write(result, rows, syn, trn, to_train, reference, measures)
        logger.info(
            f"memorisation audit: {result['num_flagged']} of {len(syn)} synthetic image(s) flagged "
            f"(rate {result['memorisation_rate']:.3f}; by chance about {len(measures) * self.flag_percentile:g} % "
            f"at most); reports in {self.output_dir}"
        )
        return result

    def _write(
        self,
        result: dict[str, Any],
        rows: Sequence[dict[str, Any]],
        syn: torch.Tensor,
        trn: torch.Tensor,
        to_train: dict[str, torch.Tensor],
        reference: dict[str, torch.Tensor],
        measures: Sequence[str],
    ) -> None:
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        fields = ["synthetic_path", "train_path", "pixel_distance", "feature_distance", "flagged_by"]
        write_csv(out / "flagged.csv", rows, fields)
        order = torch.argsort(to_train["pixel_distance"])[: self.num_pairs_shown]
        pairs = torch.stack([im for i in order.tolist() for im in (syn[i], trn[int(to_train["pixel_index"][i])])])
        save_grid_png(make_grid(pairs, nrow=2), out / "closest_pairs.png")
        for m in measures:
            a, b = to_train[f"{m}_distance"].numpy(), reference[f"{m}_distance"].numpy()
            top = float(max(a.max(), b.max(), 1e-6))
            bins = np.linspace(0.0, top, 31)
            save_histogram_png(
                {"synthetic -> train": np.histogram(a, bins)[0], "held-out -> train": np.histogram(b, bins)[0]},
                out / f"distances_{m}.png",
                value_range=(0.0, top),
                title=f"nearest training image, {m} distance (threshold {result['thresholds'][m]:.4g})",
                xlabel=f"{m} distance",
            )
        write_json(out / "audit.json", result)
