"""Few-shot fine-tuning data: every batch mixes instance images and class-prior images (DreamBooth-style)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import default_collate

from medsyn_monai.data.datasets import dataset_length
from medsyn_monai.utils.cli import as_bool

__all__ = ["PRIOR_KEY", "PriorPreservationDataset", "prior_preservation_collate"]

#: batch key marking prior (class) images: ``True`` for prior images, ``False`` for instance images
PRIOR_KEY = "is_prior"


def _as_dict(item: Any, image_key: str) -> dict[str, Any]:
    if isinstance(item, Mapping):
        if image_key not in item:
            raise ValueError(f"dataset items must hold an {image_key!r} entry, got keys {sorted(map(str, item))}.")
        return dict(item)
    if isinstance(item, torch.Tensor):
        return {image_key: item}
    raise ValueError(f"dataset items must be dictionaries or image tensors, got {type(item).__name__}.")


def prior_preservation_collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collate :class:`PriorPreservationDataset` items: all instance entries first, then all prior entries.

    Each item is ``{"instance": dict, "prior": dict}`` (``"prior"`` absent without prior preservation); the result is
    one batch of ``2 B`` samples (``B`` without prior preservation) with the keys the entries share (``image``,
    ``label``, the weight key, ``is_prior``, ...), collated by PyTorch's ``default_collate``.

    Args:
        items: a list of dataset items.

    Returns:
        the batch dictionary.

    Raises:
        ValueError: empty ``items`` or items that are not pairs of dictionaries.

    Example:
        >>> import torch
        >>> items = [{"instance": {"image": torch.zeros(1, 2, 2), "label": 2},
        ...           "prior": {"image": torch.ones(1, 2, 2), "label": 1}}] * 3
        >>> batch = prior_preservation_collate(items)
        >>> tuple(batch["image"].shape), batch["label"].tolist()
        ((6, 1, 2, 2), [2, 2, 2, 1, 1, 1])
    """
    if not items:
        raise ValueError("prior_preservation_collate needs at least one item.")
    if not all(isinstance(it, Mapping) and "instance" in it for it in items):
        raise ValueError("items must be PriorPreservationDataset items: {'instance': dict[, 'prior': dict]}.")
    flat = [it["instance"] for it in items] + [it["prior"] for it in items if it.get("prior") is not None]
    keys = set(flat[0])
    for entry in flat[1:]:
        keys &= set(entry)
    return default_collate([{k: entry[k] for k in entry if k in keys} for entry in flat])


class PriorPreservationDataset(Dataset):
    """Pairs of an instance image and a class-prior image, for few-shot fine-tuning with prior preservation.

    DreamBooth (Ruiz et al., "DreamBooth: Fine Tuning Text-to-Image Diffusion Models for Subject-Driven Generation",
    CVPR 2023) fine-tunes a pretrained diffusion model on a few images of one instance while a *prior-preservation*
    loss on images the model itself generated for the parent class, before fine-tuning, keeps it from forgetting
    (and from collapsing) that class. Here the condition is a class label: instance images get ``instance_label``
    (a new class slot or an existing class), prior images ``class_label`` (the parent class).

    Item ``i`` is ``{"instance": instance_data[i % n_inst], "prior": class_data[i % n_class]}``, each a dictionary
    with ``label_key`` set to its label (int64 scalar tensor), ``weight_key`` to its loss weight (float32 scalar
    tensor: ``instance_loss_weight`` or ``prior_loss_weight``) and ``"is_prior"`` (bool); ``transform`` (e.g.
    random flips) is applied to each entry. :func:`prior_preservation_collate` (also :attr:`collate_fn`) turns ``B``
    items into one batch of ``2 B`` samples, the ``B`` instance samples first, so every batch holds both kinds.
    With the trainer's per-sample weights (``loss = mean_i(w_i l_i)``, ``l_i`` the per-sample mean pixel loss) a
    batch's loss is ``(L_instance + prior_loss_weight * L_prior) / 2``: DreamBooth's loss up to the factor 1/2.

    The epoch has ``max(num_repeats * len(instance_data), len(class_data))`` items, so a few-shot epoch is not a
    single iteration; with ``class_data=None`` (no prior preservation) it has ``num_repeats * len(instance_data)``
    items without ``"prior"`` entries.

    Args:
        instance_data: dataset (or sequence) of instance items: dictionaries with ``image_key`` (e.g. a
            :class:`~medsyn_monai.data.SliceDataset`), or image tensors.
        class_data: the same for the prior (class) images, or ``None`` for fine-tuning without prior preservation.
        instance_label: class index of the instance (a new class slot or an existing class).
        class_label: class index of the parent class (the prior images' class).
        prior_loss_weight: loss weight of the prior samples (DreamBooth's lambda, 1 by default).
        instance_loss_weight: loss weight of the instance samples.
        num_repeats: how many times the instance images are seen per epoch (at least); ``None``: enough times for
            ``min_length`` items.
        min_length: with ``num_repeats=None``, the epoch's minimum number of items (e.g. the number of class
            images, so that fine-tuning with and without prior preservation sees the instances equally often).
        transform: optional callable applied to every entry (dict in, dict out) after labels and weights are set.
        image_key: key of the images.
        label_key: key of the labels.
        weight_key: key of the per-sample loss weights (the trainer's ``sample_weight_key``).
        with_prior_preservation: use ``class_data`` (``False``: ignore it, fine-tune on the instances alone; the
            command-line spellings of :func:`~medsyn_monai.utils.as_bool` are accepted).

    Raises:
        ValueError: empty datasets, negative weights, ``num_repeats < 1``, negative labels.

    Example:
        >>> import torch
        >>> inst = [torch.zeros(1, 4, 4)] * 2
        >>> prior = [{"image": torch.ones(1, 4, 4)}] * 5
        >>> ds = PriorPreservationDataset(inst, prior, instance_label=2, class_label=1, prior_loss_weight=0.5)
        >>> len(ds), ds[0]["instance"]["label"].item(), ds[0]["prior"]["loss_weight"].item()
        (5, 2, 0.5)
        >>> batch = ds.collate_fn([ds[0], ds[1]])
        >>> batch["label"].tolist(), batch["loss_weight"].tolist(), batch["is_prior"].tolist()
        ([2, 2, 1, 1], [1.0, 1.0, 0.5, 0.5], [False, False, True, True])
    """

    def __init__(
        self,
        instance_data: Dataset | Sequence,
        class_data: Dataset | Sequence | None,
        instance_label: int,
        class_label: int,
        prior_loss_weight: float = 1.0,
        instance_loss_weight: float = 1.0,
        num_repeats: int | None = 1,
        transform: Callable | None = None,
        image_key: str = "image",
        label_key: str = "label",
        weight_key: str = "loss_weight",
        min_length: int = 1,
        with_prior_preservation: bool = True,
    ) -> None:
        if not as_bool(with_prior_preservation, "with_prior_preservation"):
            class_data = None
        if dataset_length(instance_data, "instance_data") == 0:
            raise ValueError("instance_data is empty: few-shot fine-tuning needs at least one instance image.")
        if class_data is not None and dataset_length(class_data, "class_data") == 0:
            raise ValueError("class_data is empty: give prior images, or None for fine-tuning without prior loss.")
        if int(instance_label) < 0 or int(class_label) < 0:
            raise ValueError(f"labels must be non-negative class indices, got {instance_label}, {class_label}.")
        if prior_loss_weight < 0 or instance_loss_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got {instance_loss_weight}, {prior_loss_weight}.")
        if num_repeats is None:
            num_repeats = max(1, -(-int(min_length) // dataset_length(instance_data, "instance_data")))
        if isinstance(num_repeats, bool) or int(num_repeats) != num_repeats or num_repeats < 1:
            raise ValueError(f"num_repeats must be an integer >= 1, got {num_repeats!r}.")
        if transform is not None and not callable(transform):
            raise ValueError(f"transform must be callable or None, got {type(transform).__name__}.")
        self.instance_data = instance_data
        self.class_data = class_data
        self.instance_label = int(instance_label)
        self.class_label = int(class_label)
        self.prior_loss_weight = float(prior_loss_weight)
        self.instance_loss_weight = float(instance_loss_weight)
        self.num_repeats = int(num_repeats)
        self.transform = transform
        self.image_key = image_key
        self.label_key = label_key
        self.weight_key = weight_key

    @property
    def num_instance_images(self) -> int:
        return dataset_length(self.instance_data, "instance_data")

    @property
    def num_class_images(self) -> int:
        return 0 if self.class_data is None else dataset_length(self.class_data, "class_data")

    @property
    def with_prior_preservation(self) -> bool:
        return self.class_data is not None

    @property
    def collate_fn(self) -> Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]]:
        """:func:`prior_preservation_collate`, for ``DataLoader(dataset, collate_fn=dataset.collate_fn)``."""
        return prior_preservation_collate

    def __len__(self) -> int:
        return max(self.num_repeats * self.num_instance_images, self.num_class_images)

    def _entry(self, item: Any, label: int, weight: float, prior: bool) -> dict[str, Any]:
        entry = _as_dict(item, self.image_key)
        entry[self.label_key] = torch.tensor(label, dtype=torch.long)
        entry[self.weight_key] = torch.tensor(weight, dtype=torch.float32)
        entry[PRIOR_KEY] = torch.tensor(prior)
        return dict(self.transform(entry)) if self.transform is not None else entry

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items.")
        index %= len(self)
        out = {
            "instance": self._entry(
                self.instance_data[index % self.num_instance_images],
                self.instance_label,
                self.instance_loss_weight,
                False,
            )
        }
        if self.class_data is not None:
            out["prior"] = self._entry(
                self.class_data[index % self.num_class_images], self.class_label, self.prior_loss_weight, True
            )
        return out
