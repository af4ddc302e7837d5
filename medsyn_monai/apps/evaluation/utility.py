"""Classifier utility table: classifiers trained on real, synthetic, real + synthetic images and pre-trained on
synthetic images, in several training settings, all tested on real images; plus FID / SSIM between the image sets."""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from medsyn_monai.apps.evaluation.classifier import (
    evaluate_classifier,
    fit_classifier,
    generate_class_images,
    scaled_class_counts,
    stratified_indices,
)
from medsyn_monai.apps.evaluation.pretraining import SyntheticPretrainingStudy
from medsyn_monai.apps.evaluation.synthetic_images import _as_images, _FeatureSource, _has_extract
from medsyn_monai.apps.generation.sampler import SampleGenerator
from medsyn_monai.data.datasets import ImageLabelDataset, TensorPairDataset, dataset_labels, dataset_length
from medsyn_monai.metrics import cross_set_ssim, frechet_distance
from medsyn_monai.networks.nets.feature_extractor import FeatureExtractor
from medsyn_monai.utils.cli import as_bool
from medsyn_monai.utils.enums import SubsetEpochs
from medsyn_monai.utils.io import atomic_write, write_csv, write_json
from medsyn_monai.visualize import draw_bar_chart

__all__ = ["ClassifierUtilityStudy"]

#: the kinds of training condition (rows of the table), in the order of the table
CONDITIONS = ("real_only", "synthetic_only", "real_plus_synthetic", "synthetic_then_real")
#: scalar test metrics of every run (besides the per-class accuracy)
METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "f1_macro")
_METRIC_NAMES = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy", "roc_auc": "ROC AUC",
                 "f1_macro": "F1 (macro)"}  # fmt: skip
#: the pairs of image sets of the dataset-pair table
PAIRS = (("real_train", "real_test"), ("real_train", "synthetic"), ("real_test", "synthetic"),
         ("synthetic_a", "synthetic_b"))  # fmt: skip


def _ratio_name(ratio: float) -> str:
    return f"real_plus_synthetic_1to{ratio:g}"


def _setting_name(augment: bool, class_weighted: bool) -> str:
    return f"{'aug' if augment else 'noaug'}_{'weighted' if class_weighted else 'unweighted'}"


def _setting_label(augment: bool, class_weighted: bool) -> str:
    return f"{'augmentation' if augment else 'no augmentation'}, {'weighted' if class_weighted else 'unweighted'} loss"


def _bools(values: Sequence[Any], name: str) -> list[bool]:
    if isinstance(values, (str, bool)) or not values:
        raise ValueError(f"{name} must be a non-empty list of booleans (e.g. [false, true]), got {values!r}.")
    out = [as_bool(v, name) for v in values]
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must not repeat a value, got {list(values)}.")
    return out


def _mean_std(values: Sequence[float | None]) -> dict[str, float | None]:
    """Mean and (population, ddof 0) standard deviation of the defined values; ``None`` when there are none."""
    defined = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not defined:
        return {"mean": None, "std": None}
    return {"mean": float(np.mean(defined)), "std": float(np.std(defined))}


def _stack_images(data: Dataset | Sequence, name: str) -> torch.Tensor:
    """``(N, C, H, W)`` float images of a dataset: its ``images`` tensor when it has one (e.g. a
    :class:`~medsyn_monai.data.SliceDataset`, without its random transform), else item by item."""
    images = getattr(data, "images", None)
    n = dataset_length(data, name)
    if not (isinstance(images, torch.Tensor) and images.shape[0] == n):
        items = ImageLabelDataset(data)
        images = torch.stack([items[i]["image"] for i in range(n)]) if n else torch.zeros(0)
    return _as_images(images, name)


def _take(data: Dataset, indices: Sequence[int]) -> Dataset:
    """The items ``indices`` of ``data`` (a tensor slice for a :class:`TensorPairDataset`)."""
    if isinstance(data, TensorPairDataset):
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return TensorPairDataset(data.images[index], data.labels[index])
    return Subset(data, list(indices))


class ClassifierUtilityStudy:
    """The classifier utility table of synthetic images: train one classifier per training condition and setting,
    test each on the real test images, and compare the image sets by FID and SSIM.

    The downstream table of the chest X-ray classifier-free guidance paper. Rows (training conditions; pick kinds
    with ``conditions``):

    - ``real_only``: the real training images;
    - ``synthetic_only``: the synthetic images of ``samples_per_class`` (see below);
    - ``real_plus_synthetic_1to<r>`` for each ``r`` of ``mix_ratios``: the real training images plus ``r`` times as
      many synthetic images, with the real class proportions (``round(r * n_c)`` of class ``c``, the first of the
      generated images of that class, so that the smaller mixes are subsets of the larger ones);
    - ``synthetic_then_real_<p>`` for each fraction ``f`` of ``real_fractions`` (``p = 100 f`` percent): the
      ``synthetic_only`` classifier fine-tuned on a class-stratified random ``f`` of the real training images
      (:func:`~medsyn_monai.apps.evaluation.stratified_indices`, drawn per classifier seed), and for ``f < 1`` the
      matching baseline ``real_only_<p>``: the same initial weights trained on the same real subset alone (the
      baseline of ``f = 1`` is the ``real_only`` row).

    Every row is trained in every *setting*, the product of ``augment_options`` (``train_transform`` applied to
    every training item, real and synthetic, or no transform) and ``class_weighted_options`` (inverse-frequency class
    weights of the run's training labels in the cross-entropy, or none); the default is all 4 combinations. Within
    a classifier seed all runs start from the same initial weights and shuffle with the same seed; with
    ``val_data`` (and ``select_on_val``) each training stage keeps its epoch of best balanced accuracy on the real
    validation images (:func:`~medsyn_monai.apps.evaluation.fit_classifier`), else its last epoch. Every run is
    tested on ``test_data`` (:func:`~medsyn_monai.apps.evaluation.evaluate_classifier`): accuracy, balanced
    accuracy, ROC AUC, macro F1 and the accuracy of each class (its recall), reported as mean ± standard deviation
    (population, ddof 0, as the other studies) over ``classifier_seeds``.

    Synthetic images are generated once (``generation_seed``) and shared by all seeds and settings: per class
    ``c`` the larger of ``samples_per_class[c]`` and what the largest mix needs (``round(max(mix_ratios) * n_c)``,
    ``n_c`` real training images of class ``c``; when the mixes are asked for). ``synthetic_only`` and the
    pre-training use the first ``samples_per_class[c]`` of each class; with ``samples_per_class=None`` (default) that
    is the largest mix's count, ``max(1, round(max(mix_ratios) * n_c))`` (``max(1, n_c)`` without ratios), i.e. the
    real class proportions. Instead of a ``generator``, already generated ``synthetic_data`` can be given (it must
    hold enough images of each class: the first ones of each class are used the same way).

    The dataset-pair table (``pair_table``) gives, for real train vs real test, real train vs synthetic, real test
    vs synthetic and synthetic vs synthetic (two disjoint class-stratified halves of the synthetic images), the mean
    SSIM over ``ssim_pairs`` random cross-set pairs (:func:`~medsyn_monai.metrics.cross_set_ssim`; images of at least
    11 px per side) and, with a feature extractor, the FID in its feature space
    (:func:`~medsyn_monai.metrics.frechet_distance`): the scale that the synthetic sets' distances are read
    against. FID is biased upwards for small sets, and the synthetic halves are half the size of the synthetic set.

    :meth:`run` returns flat metrics ``<metric>_<row>_<setting>_mean`` / ``_std`` (also
    ``per_class_accuracy_<class>_<row>_<setting>_mean`` / ``_std``, ``fid_<a>_vs_<b>``, ``ssim_<a>_vs_<b>``) and, with
    ``output_dir``, writes ``utility.json`` (settings, every seed's numbers, means and standard deviations, the pair
    table), ``utility.csv`` (one line per row and setting), ``utility.md`` (the tables: rows = conditions, columns =
    settings) and ``utility.png`` (accuracy and ROC AUC per row and setting, bars with standard-deviation whiskers).

    Args:
        classifier_factory: callable returning a fresh classifier ``(B, C, *spatial) -> (B, num_classes)`` logits,
            e.g. a config item with ``"_mode_": "callable"`` for :class:`~medsyn_monai.networks.nets.ExpertClassifier`.
        train_data: real training items ``{"image", "label"}`` (without random transform: ``train_transform`` is
            applied by the study).
        test_data: real test items.
        class_names: the classifier's classes (at least 2).
        generator: object with ``generate(labels=..., seed=...) -> (images, labels)`` (a loaded
            :class:`~medsyn_monai.apps.generation.DiffusionSampler`); or give ``synthetic_data``.
        synthetic_data: already generated ``{"image", "label"}`` items instead of ``generator``.
        samples_per_class: synthetic images per class of ``synthetic_only`` and the pre-training (an int, or one per
            class, each >= 1); ``None``: as many as the largest mix adds (see above).
        generator_labels: the generator's class index for each of ``class_names`` (default ``0, 1, ...``).
        conditions: kinds of rows to train, from ``"real_only"``, ``"synthetic_only"``, ``"real_plus_synthetic"``,
            ``"synthetic_then_real"`` (the latter also trains the ``real_only_<p>`` baselines).
        mix_ratios: synthetic images per real image of the mixes, each > 0 (1: as many synthetic as real images).
        real_fractions: fractions of the real training set for fine-tuning, each in ``(0, 1]``.
        augment_options: with and/or without ``train_transform`` (command-line spellings of
            :func:`~medsyn_monai.utils.as_bool` are accepted here, in ``class_weighted_options`` and
            ``select_on_val``).
        class_weighted_options: with and/or without inverse-frequency class weights in the cross-entropy.
        classifier_seeds: seeds of the initial weights, the shuffling and the real subsets (one run per seed).
        val_data: real validation items for best-epoch selection, or ``None``.
        select_on_val: select the best epoch on ``val_data`` (``False``: keep the last epoch).
        train_transform: dict transform of the settings with augmentation (e.g. random flips / affine).
        max_epochs: epochs of every classifier trained from its initial weights on real or real + synthetic images
            (``real_only``, the mixes, ``real_only_<p>``).
        pretrain_epochs: epochs on the synthetic images (``synthetic_only``, the pre-training; default
            ``max_epochs``).
        finetune_epochs: epochs of fine-tuning on the real subset.
        subset_epochs: epochs of the runs on a real subset (:class:`~medsyn_monai.utils.SubsetEpochs`): ``"same"``
            as on the whole set, or ``"scaled"`` by ``1 / f`` (as many images seen as on the whole set).
        batch_size: training and evaluation batch size.
        learning_rate: Adam learning rate (all runs but fine-tuning).
        finetune_learning_rate: Adam learning rate of fine-tuning (default ``learning_rate``).
        generation_seed: seed of the synthetic images (and of the synthetic halves and SSIM pairs).
        pair_table: compute the dataset-pair table.
        feature_extractor: features of the FID (a :class:`~medsyn_monai.networks.nets.FeatureExtractor`, an object
            with ``extract(images, device)``, or a module to wrap in one); ``None``: ``expert_ckpt`` or no FID.
        expert_ckpt: expert checkpoint (``train_expert.json``) to take the FID features from, used when the file
            exists and no ``feature_extractor`` is given.
        extractor_name: name of the feature space written in the reports.
        ssim_pairs: random image pairs per SSIM mean.
        device: training and feature device.
        output_dir: folder of the reports (``None``: nothing written).
        num_workers: data loader workers.

    Raises:
        ValueError: neither or both of ``generator`` / ``synthetic_data``; fewer than 2 classes; an unknown or
            repeated condition; ratios <= 0 or fractions outside ``(0, 1]`` (or a list empty while its condition is
            asked for); empty or repeated setting options; augmentation asked for without ``train_transform``; no
            seeds; epochs, batch size or ``ssim_pairs`` below 1; bad ``samples_per_class`` or ``generator_labels``.

    Example:
        >>> import torch
        >>> x = torch.cat([-torch.ones(6, 1, 2, 2), torch.ones(6, 1, 2, 2)])
        >>> real = [{"image": a, "label": b} for a, b in zip(x, torch.tensor([0] * 6 + [1] * 6))]
        >>> factory = lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> study = ClassifierUtilityStudy(factory, real, real, ["a", "b"], synthetic_data=real * 2,
        ...     conditions=["real_only", "synthetic_only"], augment_options=[False], class_weighted_options=[True],
        ...     classifier_seeds=[0, 1], max_epochs=20, learning_rate=0.1, pair_table=False)
        >>> m = study.run()
        >>> m["accuracy_real_only_noaug_weighted_mean"], m["accuracy_synthetic_only_noaug_weighted_std"]
        (1.0, 0.0)
    """

    def __init__(
        self,
        classifier_factory: Callable[[], nn.Module],
        train_data: Dataset | Sequence,
        test_data: Dataset | Sequence,
        class_names: Sequence[str],
        generator: SampleGenerator | None = None,
        synthetic_data: Dataset | Sequence | None = None,
        samples_per_class: int | Sequence[int] | None = None,
        generator_labels: Sequence[int] | None = None,
        conditions: Sequence[str] = CONDITIONS,
        mix_ratios: Sequence[float] = (1, 2),
        real_fractions: Sequence[float] = (1.0, 0.1, 0.01),
        augment_options: Sequence[bool] = (False, True),
        class_weighted_options: Sequence[bool] = (False, True),
        classifier_seeds: Sequence[int] = (0, 1, 2, 3, 4),
        val_data: Dataset | Sequence | None = None,
        select_on_val: bool = True,
        train_transform: Callable | None = None,
        max_epochs: int = 10,
        pretrain_epochs: int | None = None,
        finetune_epochs: int = 5,
        subset_epochs: SubsetEpochs | str = SubsetEpochs.SAME,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        finetune_learning_rate: float | None = None,
        generation_seed: int = 0,
        pair_table: bool = True,
        feature_extractor: FeatureExtractor | nn.Module | None = None,
        expert_ckpt: str | Path | None = None,
        extractor_name: str = "expert",
        ssim_pairs: int = 500,
        device: str | torch.device = "cpu",
        output_dir: str | Path | None = None,
        num_workers: int = 0,
    ) -> None:
        self.logger = logging.getLogger(__name__)
        if (generator is None) == (synthetic_data is None):
            raise ValueError("give exactly one of generator (to generate the synthetic images) and synthetic_data.")
        self.class_names = [str(c) for c in class_names]
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"class_names must name at least 2 distinct classes, got {self.class_names}.")
        if isinstance(conditions, str) or not conditions:
            raise ValueError(f"conditions must be a non-empty list of names from {list(CONDITIONS)}.")
        unknown = [c for c in conditions if c not in CONDITIONS]
        if unknown or len(set(conditions)) != len(conditions):
            raise ValueError(
                f"conditions must be distinct names from {list(CONDITIONS)}, got {list(conditions)}"
                + (f" (unknown: {unknown})." if unknown else " (repeated).")
            )
        self.conditions = [c for c in CONDITIONS if c in conditions]  # the table's order
        self.mix_ratios = [float(r) for r in mix_ratios]
        if any(not (math.isfinite(r) and r > 0) for r in self.mix_ratios):
            raise ValueError(f"mix_ratios must be numbers > 0 (synthetic images per real image), got {mix_ratios}.")
        if len({_ratio_name(r) for r in self.mix_ratios}) != len(self.mix_ratios):
            raise ValueError(f"mix_ratios must be distinct, got {list(mix_ratios)}.")
        if "real_plus_synthetic" in self.conditions and not self.mix_ratios:
            raise ValueError("mix_ratios is empty but the condition real_plus_synthetic is asked for.")
        self.real_fractions = [float(f) for f in real_fractions]
        if any(not 0.0 < f <= 1.0 for f in self.real_fractions):  # NaN fails the comparison too
            raise ValueError(
                f"real_fractions must be fractions in (0, 1] of the real training set, got {real_fractions}."
            )
        names = [SyntheticPretrainingStudy.row_name(f, True) for f in self.real_fractions]
        if len(set(names)) != len(names):
            raise ValueError(f"real_fractions must be distinct (as row names {names}), got {list(real_fractions)}.")
        if "synthetic_then_real" in self.conditions and not self.real_fractions:
            raise ValueError("real_fractions is empty but the condition synthetic_then_real is asked for.")
        augments = _bools(augment_options, "augment_options")
        weightings = _bools(class_weighted_options, "class_weighted_options")
        if True in augments and train_transform is None:
            raise ValueError("augment_options holds true but no train_transform was given: pass the augmentation "
                             "(a dict transform) or use augment_options=[false].")  # fmt: skip
        self.settings: list[dict[str, Any]] = [
            {"name": _setting_name(a, w), "augment": a, "class_weighted": w, "label": _setting_label(a, w)}
            for a, w in itertools.product(augments, weightings)
        ]
        self.classifier_seeds = [int(s) for s in classifier_seeds]
        if not self.classifier_seeds:
            raise ValueError("classifier_seeds must name at least one seed.")
        self.max_epochs = int(max_epochs)
        self.pretrain_epochs = self.max_epochs if pretrain_epochs is None else int(pretrain_epochs)
        self.finetune_epochs = int(finetune_epochs)
        try:
            self.subset_epochs = SubsetEpochs(subset_epochs)
        except ValueError:
            raise ValueError(
                f"subset_epochs must be one of {[e.value for e in SubsetEpochs]}, got {subset_epochs!r}."
            ) from None
        if min(self.max_epochs, self.pretrain_epochs, self.finetune_epochs, int(batch_size), int(ssim_pairs)) < 1:
            raise ValueError(
                f"max_epochs, pretrain_epochs, finetune_epochs, batch_size and ssim_pairs must be >= 1, got "
                f"{max_epochs}, {pretrain_epochs}, {finetune_epochs}, {batch_size}, {ssim_pairs}."
            )
        num_classes = len(self.class_names)
        if samples_per_class is None:
            self.samples_per_class: list[int] | None = None
        else:
            counts = [samples_per_class] * num_classes if isinstance(samples_per_class, int) else samples_per_class
            self.samples_per_class = [int(c) for c in counts]
            if len(self.samples_per_class) != num_classes or min(self.samples_per_class) < 1:
                raise ValueError(
                    f"samples_per_class must be an int >= 1 or one int >= 1 per class ({num_classes}), got "
                    f"{samples_per_class}."
                )
        self.generator_labels = list(range(num_classes)) if generator_labels is None else list(generator_labels)
        if len(self.generator_labels) != num_classes:
            raise ValueError(f"generator_labels has {len(self.generator_labels)} entries for {num_classes} classes.")
        self.classifier_factory = classifier_factory
        self.train_data, self.test_data = train_data, test_data
        self.val_data = val_data if as_bool(select_on_val, "select_on_val") else None
        self.generator, self.synthetic_data = generator, synthetic_data
        self.train_transform = train_transform
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.finetune_learning_rate = (
            self.learning_rate if finetune_learning_rate is None else float(finetune_learning_rate)
        )
        self.generation_seed = int(generation_seed)
        self.pair_table = as_bool(pair_table, "pair_table")
        self.ssim_pairs = int(ssim_pairs)
        self.extractor_name = str(extractor_name)
        self.feature_extractor: _FeatureSource | None = None
        if feature_extractor is not None:
            self.feature_extractor = (
                feature_extractor if _has_extract(feature_extractor) else FeatureExtractor(feature_extractor)
            )
        elif expert_ckpt is not None and Path(expert_ckpt).is_file():
            self.feature_extractor = FeatureExtractor.from_expert_checkpoint(expert_ckpt)
        elif self.pair_table:
            self.logger.warning(
                f"no feature extractor{f' (no expert checkpoint at {expert_ckpt})' if expert_ckpt else ''}: the "
                "dataset-pair table has SSIM only (train the expert with train_expert.json for the FID too)."
            )
        self.device = torch.device(device)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.num_workers = int(num_workers)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def rows(self) -> list[str]:
        """The names of the table's rows, in order."""
        rows: list[str] = [c for c in ("real_only", "synthetic_only") if c in self.conditions]
        if "real_plus_synthetic" in self.conditions:
            rows += [_ratio_name(r) for r in self.mix_ratios]
        if "synthetic_then_real" in self.conditions:
            for f in self.real_fractions:
                rows.append(SyntheticPretrainingStudy.row_name(f, True))
                if f < 1.0:
                    rows.append(SyntheticPretrainingStudy.row_name(f, False))
        return rows

    def real_counts(self) -> list[int]:
        """Real training images per class."""
        return scaled_class_counts(self.train_data, self.num_classes, 1.0)

    def synthetic_counts(self) -> dict[str, list[int]]:
        """Synthetic images per class: ``"synthetic_only"`` (also the pre-training set), one entry per mix row and
        ``"generated"`` (the larger of them, what the generator is asked for)."""
        if sum(self.real_counts()) == 0:
            raise ValueError("the real training set is empty: there is nothing to train on or to match.")
        largest = max(self.mix_ratios) if self.mix_ratios else 1.0
        needed = scaled_class_counts(self.train_data, self.num_classes, largest)
        counts: dict[str, list[int]] = {
            "synthetic_only": self.samples_per_class or [max(1, n) for n in needed],
        }
        if "real_plus_synthetic" in self.conditions:
            for r in self.mix_ratios:
                counts[_ratio_name(r)] = scaled_class_counts(self.train_data, self.num_classes, r)
        counts["generated"] = [max(c) for c in zip(*counts.values(), strict=True)]
        return counts

    def synthetic_set(self) -> Dataset:
        """The synthetic images: ``synthetic_data``, or ``synthetic_counts()["generated"]`` images generated per
        class (once, ``generation_seed``)."""
        if self.synthetic_data is not None:
            return ImageLabelDataset(self.synthetic_data)
        generator = self.generator
        assert generator is not None  # the constructor requires exactly one of generator and synthetic_data
        counts = self.synthetic_counts()["generated"]
        self.logger.info(f"generating {sum(counts)} synthetic images ({counts} per class)")
        return generate_class_images(generator, counts, self.generator_labels, self.generation_seed)

    def _first_per_class(self, labels: torch.Tensor, counts: Sequence[int], what: str) -> list[int]:
        """Indices of the first ``counts[c]`` synthetic images of each class ``c``."""
        chosen: list[int] = []
        for c, n in enumerate(counts):
            members = torch.nonzero(labels == c).reshape(-1).tolist()
            if len(members) < n:
                raise ValueError(
                    f"{what} needs {n} synthetic images of class {self.class_names[c]!r} but there are "
                    f"{len(members)}: give more synthetic_data (or lower samples_per_class / mix_ratios)."
                )
            chosen += members[:n]
        return sorted(chosen)

    def epochs_on_subset(self, epochs: int, fraction: float) -> int:
        """Epochs of a run on the real subset of ``fraction`` that would train ``epochs`` on the whole set."""
        if self.subset_epochs == SubsetEpochs.SCALED:
            return max(epochs, round(epochs / fraction))
        return epochs

    def _fit(self, state: dict, data: Dataset, epochs: int, lr: float, weighted: bool, seed: int) -> nn.Module:
        network = self.classifier_factory()
        network.load_state_dict(state)
        network, info = fit_classifier(
            network,
            data,
            self.num_classes,
            epochs,
            batch_size=self.batch_size,
            learning_rate=lr,
            class_weighted=weighted,
            val_data=self.val_data,
            class_names=self.class_names,
            device=self.device,
            seed=seed,
            num_workers=self.num_workers,
        )
        network.utility_best_epoch = info["best_epoch"]
        return network

    def _test(self, network: nn.Module, loader: DataLoader) -> dict[str, Any]:
        report = evaluate_classifier(network, loader, self.device, self.num_classes, self.class_names)
        out: dict[str, Any] = {k: (None if report.get(k) is None else float(report[k])) for k in METRICS}
        per_class = report["per_class_accuracy"]
        out["per_class_accuracy"] = {
            c: (None if per_class[c] is None or not math.isfinite(per_class[c]) else float(per_class[c]))
            for c in self.class_names
        }
        best_epoch: Any = network.utility_best_epoch  # an int set by _fit (Module types it Tensor | Module)
        out["best_epoch"] = int(best_epoch)
        return out

    def _train_setting(
        self,
        setting: dict[str, Any],
        seed: int,
        init_state: dict[str, torch.Tensor],
        sets: dict[str, Dataset],
        subsets: dict[float, list[int]],
    ) -> Iterator[tuple[str, nn.Module, int, int]]:
        """Train the rows of one setting and seed; yields ``(row, network, real images, synthetic images)``."""
        weighted, lr = setting["class_weighted"], self.learning_rate
        transform = self.train_transform if setting["augment"] else None
        real = ImageLabelDataset(self.train_data, transform)
        if "real_only" in self.conditions:
            yield "real_only", self._fit(init_state, real, self.max_epochs, lr, weighted, seed), len(real), 0
        for row, data in sets.items():
            if row != "synthetic_only":  # the mixes
                added = ImageLabelDataset(data, transform)
                mix: ConcatDataset = ConcatDataset([real, added])
                yield row, self._fit(init_state, mix, self.max_epochs, lr, weighted, seed), len(real), len(added)
        if not {"synthetic_only", "synthetic_then_real"} & set(self.conditions):
            return
        synthetic = ImageLabelDataset(sets["synthetic_only"], transform)
        pretrained = self._fit(init_state, synthetic, self.pretrain_epochs, lr, weighted, seed)
        pretrained_state = copy.deepcopy(pretrained.state_dict())
        if "synthetic_only" in self.conditions:
            yield "synthetic_only", pretrained, 0, len(synthetic)
        if "synthetic_then_real" not in self.conditions:
            return
        for f in self.real_fractions:
            subset = ImageLabelDataset(Subset(self.train_data, subsets[f]), transform)  # type: ignore[arg-type]  # Subset just indexes: a Sequence works
            tune_epochs = self.epochs_on_subset(self.finetune_epochs, f)
            tuned = self._fit(pretrained_state, subset, tune_epochs, self.finetune_learning_rate, weighted, seed)
            yield SyntheticPretrainingStudy.row_name(f, True), tuned, len(subset), len(synthetic)
            if f < 1.0:
                baseline = self._fit(init_state, subset, self.epochs_on_subset(self.max_epochs, f), lr, weighted, seed)
                yield SyntheticPretrainingStudy.row_name(f, False), baseline, len(subset), 0

    def run(self) -> dict[str, Any]:
        """Generate (once), compute the dataset-pair table, train every row in every setting for every seed, test on
        the real test images and write the reports; returns the flat metrics."""
        counts = self.synthetic_counts()
        synthetic = self.synthetic_set()
        labels = dataset_labels(synthetic)
        # the pair table first: images it cannot compare (e.g. too small for SSIM) stop the study before the training
        pairs = self.dataset_pairs(synthetic, labels) if self.pair_table else []
        sets = {row: _take(synthetic, self._first_per_class(labels, n, row)) for row, n in counts.items()
                if row != "generated"}  # fmt: skip
        test_loader = DataLoader(ImageLabelDataset(self.test_data), batch_size=self.batch_size, shuffle=False,
                                 num_workers=self.num_workers)  # fmt: skip
        train_labels = dataset_labels(self.train_data)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            row: {s["name"]: [] for s in self.settings} for row in self.rows()
        }
        for seed in self.classifier_seeds:
            torch.manual_seed(seed)
            init_state = copy.deepcopy(self.classifier_factory().state_dict())
            subsets = {f: stratified_indices(train_labels, f, seed, self.num_classes) for f in self.real_fractions}
            for setting in self.settings:
                for row, network, num_real, num_synthetic in self._train_setting(
                    setting, seed, init_state, sets, subsets
                ):
                    result = {"seed": seed, "num_real": num_real, "num_synthetic": num_synthetic}
                    result.update(self._test(network, test_loader))
                    runs[row][setting["name"]].append(result)
                    self.logger.info(
                        f"seed {seed}, {setting['name']}: {row} ({num_real} real + {num_synthetic} synthetic images), "
                        f"test accuracy {result['accuracy']:.3f}"
                    )
        summary = {row: {s: self._summarise(r) for s, r in by_setting.items()} for row, by_setting in runs.items()}
        metrics = self._flat(summary, pairs)
        if self.output_dir is not None:
            self._write(runs, summary, pairs, metrics, counts, dataset_length(synthetic, "synthetic images"))
        return metrics

    def _summarise(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "num_runs": len(results),
            "num_real": results[0]["num_real"],
            "num_synthetic": results[0]["num_synthetic"],
        }
        for key in METRICS:
            out[key] = _mean_std([r[key] for r in results])
        out["per_class_accuracy"] = {
            c: _mean_std([r["per_class_accuracy"][c] for r in results]) for c in self.class_names
        }
        return out

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        assert self.feature_extractor is not None
        return self.feature_extractor.extract(images, device=self.device).double().cpu()

    def dataset_pairs(self, synthetic: Dataset, labels: torch.Tensor) -> list[dict[str, Any]]:
        """The dataset-pair table: ``{"set_a", "set_b", "num_a", "num_b", "ssim", "fid"}`` for each pair of
        ``PAIRS`` (``fid`` ``None`` without a feature extractor or with fewer than 2 images in a set)."""
        images = {
            "real_train": _stack_images(self.train_data, "train_data"),
            "real_test": _stack_images(self.test_data, "test_data"),
            "synthetic": _stack_images(synthetic, "the synthetic images"),
        }
        half = stratified_indices(labels, 0.5, self.generation_seed, self.num_classes)
        other = sorted(set(range(int(labels.numel()))) - set(half))
        images["synthetic_a"], images["synthetic_b"] = images["synthetic"][half], images["synthetic"][other]
        features: dict[str, torch.Tensor] = {}
        if self.feature_extractor is not None:
            self.logger.info("extracting the features of the dataset-pair table")
            features = {
                k: self._features(v) for k, v in images.items() if k in ("real_train", "real_test", "synthetic")
            }
            features["synthetic_a"], features["synthetic_b"] = features["synthetic"][half], features["synthetic"][other]
        table = []
        for a, b in PAIRS:
            row: dict[str, Any] = {"set_a": a, "set_b": b, "num_a": len(images[a]), "num_b": len(images[b])}
            if min(row["num_a"], row["num_b"]) == 0:
                self.logger.warning(f"{a} or {b} holds no image: no SSIM or FID for this pair.")
                row.update(ssim=None, fid=None)
            else:
                row["ssim"] = cross_set_ssim(images[a], images[b], num_pairs=self.ssim_pairs, seed=self.generation_seed)
                enough = min(row["num_a"], row["num_b"]) >= 2
                row["fid"] = frechet_distance(features[a], features[b]) if features and enough else None
            table.append(row)
        return table

    def _flat(self, summary: dict[str, dict[str, dict[str, Any]]], pairs: list[dict[str, Any]]) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        for row, by_setting in summary.items():
            for setting, s in by_setting.items():
                for key in METRICS:
                    metrics[f"{key}_{row}_{setting}_mean"] = s[key]["mean"]
                    metrics[f"{key}_{row}_{setting}_std"] = s[key]["std"]
                for c, value in s["per_class_accuracy"].items():
                    metrics[f"per_class_accuracy_{c}_{row}_{setting}_mean"] = value["mean"]
                    metrics[f"per_class_accuracy_{c}_{row}_{setting}_std"] = value["std"]
        for p in pairs:
            metrics[f"ssim_{p['set_a']}_vs_{p['set_b']}"] = p["ssim"]
            metrics[f"fid_{p['set_a']}_vs_{p['set_b']}"] = p["fid"]
        return metrics

    # ------------------------------------------------------------------ outputs

    def _write(
        self,
        runs: dict[str, dict[str, list[dict[str, Any]]]],
        summary: dict[str, dict[str, dict[str, Any]]],
        pairs: list[dict[str, Any]],
        metrics: dict[str, Any],
        counts: dict[str, list[int]],
        num_synthetic: int,
    ) -> None:
        out = self.output_dir
        assert out is not None  # run() writes the reports only when output_dir is given
        settings = {
            "class_names": self.class_names,
            "conditions": self.conditions,
            "rows": self.rows(),
            "training_settings": self.settings,
            "num_real_train": dataset_length(self.train_data, "train_data"),
            "real_per_class": self.real_counts(),
            "num_real_test": dataset_length(self.test_data, "test_data"),
            "num_synthetic": num_synthetic,
            "synthetic_per_class": counts,
            "synthetic_source": "synthetic_data" if self.synthetic_data is not None else "generator",
            # a ConfidenceFilteredGenerator's per-class acceptance (None for an unfiltered generator)
            "synthetic_filter": getattr(self.generator, "report", None),
            "samples_per_class": self.samples_per_class,
            "mix_ratios": self.mix_ratios,
            "real_fractions": self.real_fractions,
            "classifier_seeds": self.classifier_seeds,
            "generation_seed": self.generation_seed,
            "max_epochs": self.max_epochs,
            "pretrain_epochs": self.pretrain_epochs,
            "finetune_epochs": self.finetune_epochs,
            "subset_epochs": self.subset_epochs.value,
            "epochs_on_subset": {
                SyntheticPretrainingStudy.row_name(f, True): self.epochs_on_subset(self.finetune_epochs, f)
                for f in self.real_fractions
            }
            | {
                SyntheticPretrainingStudy.row_name(f, False): self.epochs_on_subset(self.max_epochs, f)
                for f in self.real_fractions
                if f < 1.0
            },
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "finetune_learning_rate": self.finetune_learning_rate,
            "train_transform": None if self.train_transform is None else type(self.train_transform).__name__,
            "model_selection": "best real validation balanced accuracy" if self.val_data is not None else "last epoch",
            "std": "population standard deviation (ddof 0) over the classifier seeds",
            "feature_extractor": self.extractor_name if self.feature_extractor is not None else None,
            "ssim_pairs": self.ssim_pairs,
        }
        write_json(out / "utility.json", {"settings": settings, "runs": runs, "summary": summary,
                                          "dataset_pairs": pairs, "metrics": metrics})  # fmt: skip
        fields = ["condition", "setting", "augment", "class_weighted", "num_real", "num_synthetic", "num_seeds"]
        fields += [f"{k}_{stat}" for k in METRICS for stat in ("mean", "std")]
        fields += [f"per_class_accuracy_{c}_{stat}" for c in self.class_names for stat in ("mean", "std")]
        lines = []
        for row, by_setting in summary.items():
            for setting in self.settings:
                s = by_setting[setting["name"]]
                line = {"condition": row, "setting": setting["name"], "augment": setting["augment"],
                        "class_weighted": setting["class_weighted"], "num_real": s["num_real"],
                        "num_synthetic": s["num_synthetic"], "num_seeds": s["num_runs"]}  # fmt: skip
                line.update({f"{k}_{stat}": s[k][stat] for k in METRICS for stat in ("mean", "std")})
                line.update({f"per_class_accuracy_{c}_{stat}": s["per_class_accuracy"][c][stat]
                             for c in self.class_names for stat in ("mean", "std")})  # fmt: skip
                lines.append({k: "" if v is None else v for k, v in line.items()})
        write_csv(out / "utility.csv", lines, fields)
        text = self._markdown(summary, pairs, num_synthetic)
        atomic_write(out / "utility.md", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        image = self._figure(summary)
        atomic_write(out / "utility.png", lambda tmp: image.save(tmp, format="PNG"))
        self.logger.info(f"utility table written to {out}")

    def _markdown(
        self, summary: dict[str, dict[str, dict[str, Any]]], pairs: list[dict[str, Any]], num_synthetic: int
    ) -> str:
        def cell(stats: dict[str, float | None]) -> str:
            mean, std = stats["mean"], stats["std"]
            return "n/a" if mean is None or std is None else f"{mean:.3f} ± {std:.3f}"

        def label(row: str) -> str:
            return row.replace("_", " ").replace(" 1to", " 1:")

        n_seeds = len(self.classifier_seeds)
        lines = [
            f"# Classifier utility ({n_seeds} classifier seed(s), mean ± std; tested on "
            f"{dataset_length(self.test_data, 'test_data')} real test images)",
            "",
            f"Synthetic images: {num_synthetic} (generation seed {self.generation_seed}). Model selection: "
            + ("best balanced accuracy on the real validation images." if self.val_data is not None else "last epoch."),
            "Settings: " + "; ".join(f"`{s['name']}` = {s['label']}" for s in self.settings) + ".",
            f"Epochs: {self.max_epochs} on real and mixed images, {self.pretrain_epochs} on synthetic images, "
            f"{self.finetune_epochs} of fine-tuning; on a real subset of fraction f "
            + ("the same." if self.subset_epochs == SubsetEpochs.SAME else "scaled by 1 / f (`subset_epochs` scaled)."),
            "",
            "## Accuracy and ROC AUC",
            "",
            "| training | real | synthetic | "
            + " | ".join(f"{s['label']}: {m}" for s in self.settings for m in ("accuracy", "AUC"))
            + " |",
            "|---|---:|---:|" + "---:|" * (2 * len(self.settings)),
        ]
        for row, by_setting in summary.items():
            first = by_setting[self.settings[0]["name"]]
            cells = [cell(by_setting[s["name"]][m]) for s in self.settings for m in ("accuracy", "roc_auc")]
            lines.append(
                f"| {label(row)} | {first['num_real']} | {first['num_synthetic']} | " + " | ".join(cells) + " |"
            )
        header = "| training | " + " | ".join(s["label"] for s in self.settings) + " |"
        rule = "|---|" + "---:|" * len(self.settings)
        for key in ("balanced_accuracy", "f1_macro"):
            lines += ["", f"## {_METRIC_NAMES[key]}", "", header, rule]
            for row, by_setting in summary.items():
                lines.append(
                    f"| {label(row)} | " + " | ".join(cell(by_setting[s["name"]][key]) for s in self.settings) + " |"
                )
        lines += [
            "",
            "## Per-class accuracy (recall)",
            "",
            "| training | " + " | ".join(f"{s['label']}: {c}" for s in self.settings for c in self.class_names) + " |",
            "|---|" + "---:|" * (len(self.settings) * self.num_classes),
        ]
        for row, by_setting in summary.items():
            cells = [
                cell(by_setting[s["name"]]["per_class_accuracy"][c]) for s in self.settings for c in self.class_names
            ]
            lines.append(f"| {label(row)} | " + " | ".join(cells) + " |")
        if pairs:
            fid_name = self.extractor_name if self.feature_extractor is not None else "no feature extractor"
            lines += [
                "",
                "## Dataset pairs",
                "",
                f"| set A | set B | images A | images B | FID ({fid_name}) | SSIM |",
                "|---|---|---:|---:|---:|---:|",
            ]
            for p in pairs:
                fid = "n/a" if p["fid"] is None else f"{p['fid']:.4g}"
                ssim = "n/a" if p["ssim"] is None else f"{p['ssim']:.4f}"
                lines.append(f"| {p['set_a']} | {p['set_b']} | {p['num_a']} | {p['num_b']} | {fid} | {ssim} |")
            lines += [
                "",
                f"SSIM: mean over up to {self.ssim_pairs} random cross-set pairs. FID values compare only within one "
                "feature extractor and are biased upwards for small sets (synthetic_a / synthetic_b are two disjoint "
                "class-stratified halves of the synthetic images).",
            ]
        lines += ["", "![accuracy and ROC AUC per condition and setting](utility.png)", ""]
        return "\n".join(lines)

    def _figure(self, summary: dict[str, dict[str, dict[str, Any]]]) -> Image.Image:
        """Accuracy (top) and ROC AUC (bottom) per row (groups) and setting (bars), standard deviations as whiskers."""
        groups = [row.replace("_", " ").replace(" 1to", " 1:") for row in summary]
        width = max(960, 120 + 24 * len(groups) * (len(self.settings) + 1))
        panels = []
        for key in ("accuracy", "roc_auc"):
            values = {s["label"]: [by[s["name"]][key]["mean"] for by in summary.values()] for s in self.settings}
            errors = {s["label"]: [by[s["name"]][key]["std"] for by in summary.values()] for s in self.settings}
            title = (
                f"{_METRIC_NAMES[key]} on the real test images (mean ± std over {len(self.classifier_seeds)} seed(s))"
            )
            panels.append(draw_bar_chart(values, groups, errors, title=title, ylabel=_METRIC_NAMES[key],
                                         size=(width, 480)))  # fmt: skip
        figure = Image.new("RGB", (width, sum(p.height for p in panels)), "white")
        top = 0
        for panel in panels:
            figure.paste(panel, (0, top))
            top += panel.height
        return figure
