"""Cheap checks of a data set's images: degenerate images and exact duplicates (within and across splits)."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["DataQualityReport", "degenerate_kind", "exact_duplicates", "image_names"]

logger = logging.getLogger(__name__)


def degenerate_kind(image: torch.Tensor, tolerance: float = 1e-3) -> str | None:
    """``"constant"``, ``"stretched row"`` / ``"stretched column"`` (every row, or every column, the same: one line
    of pixels stretched over the image, as broken converters write), or ``None`` for an ordinary image.

    ``tolerance`` is relative to the image's own value range (or 1 for a constant image).

    Example:
        >>> degenerate_kind(torch.zeros(1, 4, 4)), degenerate_kind(torch.arange(4.0).repeat(1, 4, 1))
        ('constant', 'stretched column')
        >>> degenerate_kind(torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(0))) is None
        True
    """
    x = image.double()
    span = float(x.max() - x.min())
    if span <= tolerance:
        return "constant"
    if x.ndim < 3:
        return None
    limit = tolerance * span
    # MONAI's (C, X, Y): displayed rows run along x; equal along y (the last axis) = every displayed row the same
    if float((x - x.mean(dim=-1, keepdim=True)).abs().max()) <= limit:
        return "stretched row"
    if float((x - x.mean(dim=-2, keepdim=True)).abs().max()) <= limit:
        return "stretched column"
    return None


def _digest(image: torch.Tensor) -> str:
    return hashlib.sha256(image.detach().cpu().contiguous().to(torch.float32).numpy().tobytes()).hexdigest()


def exact_duplicates(sets: Mapping[str, Sequence[torch.Tensor] | torch.Tensor]) -> list[list[tuple[str, int]]]:
    """Groups of identical images (same pixels after preprocessing) over the named sets (e.g. the splits), each
    group as ``[(set name, index), ...]``; only groups of 2 or more.

    Example:
        >>> a, b = torch.zeros(1, 2, 2), torch.ones(1, 2, 2)
        >>> exact_duplicates({"train": [a, b], "test": [b.clone()]})
        [[('train', 1), ('test', 0)]]
    """
    groups: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for name, images in sets.items():
        for i, image in enumerate(images):
            groups[_digest(image)].append((name, i))
    return [g for g in groups.values() if len(g) > 1]


def image_names(dataset: Any) -> list[str]:
    """Names of a :class:`~medsyn_monai.data.SliceDataset`'s images: the case id (relative to the data set's
    root), with ``#slice<k>`` for cases that gave several slices."""
    case_ids = list(getattr(dataset, "case_ids", []))
    if not case_ids:
        return [f"image_{i:05d}" for i in range(len(dataset.images))]
    counts: dict[str, int] = defaultdict(int)
    totals = getattr(dataset, "num_slices_per_case", {})
    names = []
    for cid in case_ids:
        k = counts[cid]
        counts[cid] += 1
        names.append(f"{cid}#slice{k}" if totals.get(cid, 1) > 1 else cid)
    return names


class DataQualityReport:
    """Degenerate images and exact duplicates of named image sets (e.g. train / val / test), logged as warnings.

    Args:
        sets: ``{name: (images (N, C, ...), image names)}``.
        tolerance: of :func:`degenerate_kind`.

    Example:
        >>> report = DataQualityReport({"train": (torch.stack([torch.zeros(1, 2, 2), torch.rand(1, 2, 2)]), ["a", "b"]),
        ...                             "test": (torch.zeros(1, 1, 2, 2), ["c"])})
        >>> report.summary()["degenerate"], report.summary()["exact_duplicate_groups"]
        ({'train': 1, 'test': 1}, 1)
    """

    def __init__(self, sets: Mapping[str, tuple[torch.Tensor, Sequence[str]]], tolerance: float = 1e-3) -> None:
        for name, (images, names) in sets.items():
            if len(images) != len(names):
                raise ValueError(f"{name}: {len(images)} images but {len(names)} names.")
        self.sets = {k: (v[0], list(v[1])) for k, v in sets.items()}
        self.degenerate: list[dict[str, str]] = []
        for name, (images, names) in self.sets.items():
            for image, image_name in zip(images, names, strict=True):
                kind = degenerate_kind(image, tolerance)
                if kind is not None:
                    self.degenerate.append({"set": name, "image": image_name, "kind": kind})
        groups = exact_duplicates({k: v[0] for k, v in self.sets.items()})
        self.duplicates = [[{"set": s, "image": self.sets[s][1][i]} for s, i in g] for g in groups]

    @property
    def cross_set_duplicates(self) -> list[list[dict[str, str]]]:
        """Duplicate groups that span more than one set (leakage between splits)."""
        return [g for g in self.duplicates if len({d["set"] for d in g}) > 1]

    def summary(self) -> dict[str, Any]:
        """Counts per set and the listings (for ``audit.json``)."""
        counts = {name: sum(d["set"] == name for d in self.degenerate) for name in self.sets}
        return {
            "images": {name: len(v[1]) for name, v in self.sets.items()},
            "degenerate": counts,
            "degenerate_images": self.degenerate,
            "exact_duplicate_groups": len(self.duplicates),
            "exact_duplicates_across_sets": len(self.cross_set_duplicates),
            "exact_duplicates": self.duplicates,
        }

    def warn(self, what: str = "data") -> DataQualityReport:
        """Log a warning for degenerate images and duplicates (with a few examples); returns ``self``."""
        if self.degenerate:
            examples = ", ".join(f"{d['image']} ({d['kind']})" for d in self.degenerate[:5])
            logger.warning(
                f"{what}: {len(self.degenerate)} degenerate image(s) (constant, or one row/column stretched), e.g. "
                f"{examples}: check the files or the conversion that wrote them."
            )
        if self.duplicates:
            cross = len(self.cross_set_duplicates)
            example = " = ".join(f"{d['set']}:{d['image']}" for d in self.duplicates[0])
            logger.warning(
                f"{what}: {len(self.duplicates)} group(s) of identical images ({cross} across sets, which leaks "
                f"between splits and inflates every held-out figure), e.g. {example}."
            )
        return self
