"""A dataset of 2D slices, loaded and preprocessed once, cached in one tensor."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medsyn_monai.data.errors import BadFileError, DataValidationError, handle_problems

__all__ = ["SliceDataset"]

logger = logging.getLogger(__name__)

_PROGRESS_MIN_RECORDS = 20


class _ConfigError(ValueError):
    """A setting error (not a bad file): raised at once instead of being reported per file."""


def _record_path(record: Mapping[str, Any], image_key: str) -> str:
    """The path to name in an error about ``record``: its image path, first file, or its case id."""
    image = record.get(image_key)
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    if isinstance(image, (list, tuple)) and image and isinstance(image[0], (str, os.PathLike)):
        return str(image[0]) if len(image) == 1 else f"{os.path.dirname(str(image[0]))} ({len(image)} files)"
    return str(record.get("case_id", "<in-memory image>"))


def _reason(err: BaseException) -> str:
    """First line of the root cause: MONAI wraps transform errors in ``RuntimeError("applying transform ...")``."""
    while err.__cause__ is not None and str(err).startswith("applying transform"):
        err = err.__cause__
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


class SliceDataset(Dataset):
    """2D slices of a list of records, loaded and preprocessed once at construction, cached in memory.

    For every record: ``item = preprocess(dict(record))`` (a dict transform chain starting with
    :class:`~medsyn_monai.data.LoadMedicalImaged`); a 3D image is cut into 2D slices by ``slicer(item)`` (a list of
    dicts, each keeping label/case_id), a 2D image is one slice, a 3D image of depth 1 is squeezed; then
    ``slice_transform`` (deterministic, e.g. a resize) is applied to each slice. All slices are stacked in ONE
    tensor ``(N, C, H, W)`` of ``cache_dtype``; labels (when labelled) in a ``LongTensor``. Files that fail to load
    are :class:`~medsyn_monai.data.BadFileError` (``stage="load"``), handled by
    :func:`~medsyn_monai.data.handle_problems` (appending to the report the collection wrote).

    ``__getitem__`` returns ``{"image": (C, H, W) float32, "label": long scalar (when labelled), "case_id": str}``
    after ``transform`` (random per-item augmentation, optional).

    Args:
        data: records, e.g. ``ImageCollection.data("train")``.
        preprocess: dict transform that loads (and prepares) a record; ``None``: records already hold tensors.
        slicer: ``item -> list of slice dicts`` for 3D images.
        slice_transform: deterministic dict transform applied to each slice before caching.
        transform: dict transform applied at each ``__getitem__``.
        image_key: key of the image.
        label_key: key of the label.
        skip_bad_files: skip (and report) records that fail to load instead of raising.
        report_path: CSV report of skipped files (appended to).
        progress: show a progress bar while loading more than 20 records.
        cache_dtype: dtype of the cached images (e.g. ``torch.float16`` to halve memory).

    Raises:
        DataValidationError: records fail to load (without ``skip_bad_files``) or no slice is left.
        ValueError: slices of different shapes, a 3D image without ``slicer``, mixed labelled/unlabelled slices.

    Example:
        >>> recs = [{"image": torch.ones(1, 4, 4) * i, "label": i % 2, "case_id": f"c{i}"} for i in range(3)]
        >>> ds = SliceDataset(recs, preprocess=None, progress=False)
        >>> tuple(ds.images.shape), ds.labels.tolist(), ds[2]["image"].mean().item()
        ((3, 1, 4, 4), [0, 1, 0], 2.0)
    """

    def __init__(
        self,
        data: Sequence[Mapping[str, Any]],
        preprocess: Callable | None,
        slicer: Callable | None = None,
        slice_transform: Callable | None = None,
        transform: Callable | None = None,
        image_key: str = "image",
        label_key: str = "label",
        skip_bad_files: bool = False,
        report_path: str | os.PathLike | None = None,
        progress: bool = True,
        cache_dtype: torch.dtype = torch.float32,
    ) -> None:
        if not isinstance(cache_dtype, torch.dtype) or not cache_dtype.is_floating_point:
            raise ValueError(f"cache_dtype must be a floating torch dtype, got {cache_dtype!r}.")
        for name, fn in (("preprocess", preprocess), ("slicer", slicer), ("slice_transform", slice_transform)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be callable or None, got {type(fn).__name__}.")
        if transform is not None and not callable(transform):
            raise ValueError(f"transform must be callable or None, got {type(transform).__name__}.")
        self.preprocess = preprocess
        self.slicer = slicer
        self.slice_transform = slice_transform
        self.transform = transform
        self.image_key = image_key
        self.label_key = label_key
        self.cache_dtype = cache_dtype
        self.problems: list[BadFileError] = []

        records = list(data)
        iterator: Any = records
        if progress and len(records) > _PROGRESS_MIN_RECORDS:
            from tqdm.auto import tqdm

            iterator = tqdm(records, desc="loading images", unit="case")
        images: list[torch.Tensor] = []
        labels: list[int | None] = []
        case_ids: list[str] = []
        for record in iterator:
            slices = self._load_record(record)
            if slices is None:
                continue
            for s in slices:
                images.append(self._image_of(s, record))
                labels.append(None if s.get(label_key) is None else int(torch.as_tensor(s[label_key]).item()))
                case_ids.append(str(s.get("case_id", record.get("case_id", _record_path(record, image_key)))))
        handle_problems(
            self.problems,
            skip_bad_files=skip_bad_files,
            report_path=report_path,
            context=f"loading {len(records)} record(s)",
            append=True,
        )
        if not images:
            raise DataValidationError(
                self.problems,
                "SliceDataset",
                report_path,
                message=f"no slice left to train on out of {len(records)} record(s)"
                + (f" ({len(self.problems)} skipped as bad files)" if self.problems else ""),
            )
        shapes = Counter(tuple(im.shape) for im in images)
        if len(shapes) > 1:
            examples = {}
            for im, cid in zip(images, case_ids, strict=True):
                examples.setdefault(tuple(im.shape), cid)
            listing = ", ".join(f"{shape} x{n} (e.g. {examples[shape]})" for shape, n in shapes.most_common())
            raise ValueError(
                f"slices have different shapes after preprocessing: {listing}; all slices must have the same shape: "
                "set image_size / add a resize (e.g. monai.transforms.Resized) to the preprocessing or slice_transform."
            )
        has_label = [lab is not None for lab in labels]
        if any(has_label) and not all(has_label):
            raise ValueError(
                f"{sum(has_label)} slice(s) have a '{label_key}' and {len(has_label) - sum(has_label)} do not; "
                "label every record or none."
            )
        self.images: torch.Tensor = torch.stack(images)
        self.labels: torch.Tensor | None = torch.as_tensor(labels, dtype=torch.long) if all(has_label) else None
        self.case_ids: list[str] = case_ids
        self.num_slices_per_case: dict[str, int] = dict(Counter(case_ids))

    def _load_record(self, record: Mapping[str, Any]) -> list[dict] | None:
        """Preprocess, slice and transform one record; a failure is recorded as a problem (returns None)."""
        path = _record_path(record, self.image_key)
        try:
            item = self.preprocess(dict(record)) if self.preprocess is not None else dict(record)
        except BadFileError as e:
            self.problems.append(e if e.stage == "load" else BadFileError(e.path, e.reason, stage="load"))
            return None
        except Exception as e:
            logger.debug("failed to load %s", path, exc_info=True)
            self.problems.append(BadFileError(path, _reason(e), stage="load"))
            return None
        try:
            image = item[self.image_key]
            if not isinstance(image, torch.Tensor):
                image = torch.as_tensor(np.asarray(image))
                item[self.image_key] = image
            if image.ndim == 4 and image.shape[-1] == 1:  # 3D of depth 1 -> 2D
                item[self.image_key] = image = image[..., 0]
            if image.ndim == 4:
                if self.slicer is None:
                    raise _ConfigError(
                        f"got a 3D image of shape {tuple(image.shape)} but no slicer to cut it into 2D slices"
                    )
                slices = [dict(s) for s in self.slicer(item)]
                for s in slices:
                    s.setdefault("case_id", record.get("case_id"))
                    if self.label_key in item:
                        s.setdefault(self.label_key, item[self.label_key])
            elif image.ndim == 3:
                slices = [item]
            else:
                raise ValueError(f"expected a channel-first 2D or 3D image, got shape {tuple(image.shape)}")
            if self.slice_transform is not None:
                slices = [dict(self.slice_transform(s)) for s in slices]
        except _ConfigError:
            raise
        except Exception as e:
            logger.debug("failed to slice %s", path, exc_info=True)
            self.problems.append(BadFileError(path, f"slicing/transform failed: {_reason(e)}", stage="load"))
            return None
        return slices

    def _image_of(self, item: Mapping[str, Any], record: Mapping[str, Any]) -> torch.Tensor:
        image = item[self.image_key]
        image = image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(np.asarray(image))
        if image.ndim != 3:
            raise ValueError(
                f"slices must be channel-first 2D images (C, H, W), got shape {tuple(image.shape)} for "
                f"{_record_path(record, self.image_key)}; check the slicer / slice_transform."
            )
        return image.detach().to(device="cpu", dtype=self.cache_dtype).contiguous()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        out: dict[str, Any] = {"image": self.images[index].to(torch.float32), "case_id": self.case_ids[index]}
        if self.labels is not None:
            out[self.label_key] = self.labels[index]
        if self.transform is not None:
            out = self.transform(out)
        return out
