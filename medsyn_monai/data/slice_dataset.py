"""A dataset of 2D slices, loaded and preprocessed once, cached in one tensor."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medsyn_monai.data.errors import BadFileError, DataValidationError, handle_problems
from medsyn_monai.data.quality import DataQualityReport, image_names
from medsyn_monai.utils.cli import as_bool
from medsyn_monai.utils.enums import ScaleSource

if TYPE_CHECKING:  # data does not import transforms at run time (same level of the package)
    from medsyn_monai.transforms.spatial.array import SliceFilterReport

__all__ = ["SliceDataset"]

logger = logging.getLogger(__name__)

_PROGRESS_MIN_RECORDS = 20


class _ConfigError(ValueError):
    """A setting error (not a bad file): raised at once instead of being reported per file."""


@dataclass
class _EmptiedVolume:
    """A volume of which the slicer kept no slice, and why (when the slicer can tell)."""

    case: str
    report: SliceFilterReport | None
    meaning: str  # what the threshold means in the data's units ("" when unknown)
    is_ct: bool  # a CT window was applied, or the image is CT: suggest --ct_window


def _walk(transform: Any, depth: int = 0) -> Iterator[Any]:
    """``transform`` and the transforms it wraps (``Compose`` members, dictionary versions' array transforms)."""
    if transform is None or depth > 6:
        return
    yield transform
    members = getattr(transform, "transforms", None)
    if isinstance(members, (list, tuple)):
        for member in members:
            yield from _walk(member, depth + 1)
    for attr in ("transform", "windower", "window"):
        inner = getattr(transform, attr, None)
        if inner is not None and inner is not transform and not isinstance(inner, (str, int, float, tuple)):
            yield from _walk(inner, depth + 1)


def _bit_depth(image: Any) -> int | None:
    bits = getattr(image, "meta", {}).get("bit_depth")
    try:
        return None if bits is None else int(bits)
    except (TypeError, ValueError):
        return None


def _is_ct_window(t: Any) -> bool:
    """Duck-typed :class:`~medsyn_monai.transforms.CTWindow`."""
    return all(hasattr(t, a) for a in ("hu_range", "display", "scaler", "b_min", "b_max"))


def _is_scaling(t: Any) -> bool:
    """Duck-typed :class:`~medsyn_monai.transforms.ScaleToRange`."""
    return all(hasattr(t, a) for a in ("source", "source_range", "b_min", "b_max"))


def _threshold_meaning(preprocess: Any, image: Any, threshold: float) -> tuple[str, bool]:
    """What ``threshold`` (in the units of the preprocessed image) is in the data's own units, and whether it is CT.

    The last CT window or intensity scaling of ``preprocess`` decides.
    """
    meta = getattr(image, "meta", {}) or {}
    is_ct = str(meta.get("modality") or "").upper() == "CT"
    step = None
    for t in _walk(preprocess):
        if _is_ct_window(t) or _is_scaling(t):
            step = t
    if step is None:
        return ("in HU, the loaded CT's own units" if is_ct else "in the loaded image's own intensity units"), is_ct

    def back(a_min: float, a_max: float) -> float:
        return a_min + (threshold - step.b_min) / (step.b_max - step.b_min) * (a_max - a_min)

    scale = f"on the [{step.b_min:g}, {step.b_max:g}] output"
    window = _is_ct_window(step)
    if window and not step.display:
        lo, hi = step.hu_range
        presets = getattr(step, "PRESETS", {})
        names = [n for n, lw in presets.items() if tuple(lw) == (step.level, step.width)]
        name = f"'{names[0]}' " if names else ""
        return f"{scale} of the CT window {name}({lo:g} to {hi:g} HU), i.e. {back(lo, hi):.0f} HU", True
    source = getattr(step.scaler, "source", None) if window else step.source
    is_ct = is_ct or window
    what = "CT window 'display'" if window else "intensity scaling"
    if isinstance(source, tuple):
        return f"{scale} of the {what} of [{source[0]:g}, {source[1]:g}], i.e. {back(*source):.4g}", is_ct
    bits = _bit_depth(image)
    if source == ScaleSource.AUTO and bits is not None:
        top = float(2**bits - 1)
        return f"{scale} of the {what} of the {bits}-bit range [0, {top:g}], i.e. {back(0.0, top):.4g}", is_ct
    return f"{scale} of the {what} of each image's own minimum and maximum", is_ct


def _pct(fraction: float) -> str:
    return f"{100.0 * fraction:.3g}%"


def _emptied_message(emptied: list[_EmptiedVolume]) -> str:
    """Why the slicer kept no slice: the filter's threshold and fraction, the best fraction found, what to change."""
    reports = [e for e in emptied if e.report is not None]
    head = f"the slicer kept no slice of {len(emptied)} volume(s)"
    if not reports:
        return f"{head} (e.g. {emptied[0].case}); check its range (start/end/step) and filter settings"
    candidates = [(e, e.report) for e in emptied if e.report is not None]
    best, r = max(candidates, key=lambda pair: pair[1].max_fraction)
    n_slices = sum(report.num_slices for _, report in candidates)
    if r.threshold_given:
        threshold = f"foreground_threshold={r.threshold:g}"
        details = [best.meaning] if best.meaning else []
    else:
        threshold = f"the automatic foreground_threshold {r.threshold:.4g}"
        details = [f"minimum + 1% of the range of {best.case}", *([best.meaning] if best.meaning else [])]
    if details:
        threshold += f" ({'; '.join(details)})"
    if r.max_index is None:
        found = "the start/end/step range selects no slice"
    else:
        found = (
            f"the largest foreground fraction found is {r.max_fraction:.3g} ({_pct(r.max_fraction)}, slice "
            f"{r.max_index} of {best.case}), below the {r.min_fraction:g} required"
        )
    if r.max_index is None:
        fixes = ["widen the slicer's start/end range"]
    elif r.max_fraction > 0.0:
        fixes = [f"lower --min_foreground_fraction (to {r.max_fraction:.3g} or less to keep that slice; 0 keeps all)"]
    else:
        fixes = ["set --min_foreground_fraction 0 to keep every slice (no pixel is above the threshold)"]
    if any(e.is_ct for e in reports):
        fixes.append(
            "for CT choose a --ct_window whose range shows the body (e.g. --ct_window lung; --ct_window display for "
            "CT exported as display grey levels)"
        )
    fixes.append("or lower the slicer's foreground_threshold in the config")
    return (
        f"{head} ({n_slices} slice(s) in range): the foreground filter keeps a slice when at least "
        f"min_foreground_fraction={r.min_fraction:g} ({_pct(r.min_fraction)}) of its pixels are above {threshold}; "
        f"{found}. To keep slices: {'; '.join(fixes)}."
    )


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
    if isinstance(err, BadFileError):  # raised by a loading transform: its reason, not "BadFileError: <path>: ..."
        return err.reason
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
        DataValidationError: records fail to load (without ``skip_bad_files``) or no slice is left. When the
            slicer's near-empty filter (:class:`~medsyn_monai.transforms.VolumeToSlicesd` with
            ``min_foreground_fraction``) removed every slice, the message gives the ``foreground_threshold`` (and,
            from the CT window or intensity scaling in ``preprocess``, what it is in the data's units, e.g. HU), the
            ``min_foreground_fraction`` required, the largest foreground fraction found, and the settings to
            change (``--min_foreground_fraction``, for CT ``--ct_window``). Volumes emptied while others kept slices
            are logged as a warning.
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
        skip_bad_files = as_bool(skip_bad_files, "skip_bad_files")
        self.preprocess = preprocess
        self.slicer = slicer
        self.slice_transform = slice_transform
        self.transform = transform
        self.image_key = image_key
        self.label_key = label_key
        self.cache_dtype = cache_dtype
        self.skip_bad_files = skip_bad_files
        self.report_path = report_path
        self.problems: list[BadFileError] = []
        self._emptied: list[_EmptiedVolume] = []

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
            report_root=next((r["dataset_root"] for r in records if r.get("dataset_root")), None),
        )
        if not images:
            message = f"no slice left to train on out of {len(records)} record(s)"
            if self.problems:
                message += f" ({len(self.problems)} skipped as bad files)"
            if self._emptied:
                message += f": {_emptied_message(self._emptied)}"
            raise DataValidationError(self.problems, "SliceDataset", report_path, message=message)
        if self._emptied:
            logger.warning("%s; they are left out.", _emptied_message(self._emptied))
        shapes = Counter(tuple(im.shape) for im in images)
        if len(shapes) > 1:
            examples: dict[tuple[int, ...], str] = {}
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
                if not slices:
                    self._note_emptied(record, item)
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

    def _note_emptied(self, record: Mapping[str, Any], item: Mapping[str, Any]) -> None:
        """Remember a volume of which the slicer kept no slice, with the slicer's explanation when it has one."""
        case = repr(str(record.get("case_id", _record_path(record, self.image_key))))
        report_of = getattr(self.slicer, "foreground_report", None)
        report: SliceFilterReport | None = None
        meaning, is_ct = "", False
        if callable(report_of):
            try:
                report = report_of(item)
                if report is not None:
                    meaning, is_ct = _threshold_meaning(self.preprocess, item.get(self.image_key), report.threshold)
            except Exception:  # an explanation only: never fail because of it
                logger.debug("cannot explain the empty slicing of %s", case, exc_info=True)
        self._emptied.append(_EmptiedVolume(case, report, meaning, is_ct))

    def _image_of(self, item: Mapping[str, Any], record: Mapping[str, Any]) -> torch.Tensor:
        image = item[self.image_key]
        image = image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(np.asarray(image))
        if image.ndim != 3:
            raise ValueError(
                f"slices must be channel-first 2D images (C, H, W), got shape {tuple(image.shape)} for "
                f"{_record_path(record, self.image_key)}; check the slicer / slice_transform."
            )
        return image.detach().to(device="cpu", dtype=self.cache_dtype).contiguous()

    def with_data(
        self, data: Sequence[Mapping[str, Any]], transform: Callable | None = None, progress: bool = False
    ) -> SliceDataset:
        """Another split (or any records) loaded exactly like this dataset: same preprocessing, slicing, slice
        transform, keys, bad-file handling and report, with its own per-item ``transform`` (default: none, e.g. the
        validation and test images of a training set with augmentation).

        Example:
            >>> import torch
            >>> train = SliceDataset([{"image": torch.zeros(1, 4, 4), "label": 0}], preprocess=None)
            >>> test = train.with_data([{"image": torch.ones(1, 4, 4), "label": 1}])
            >>> len(test), test.labels.tolist()
            (1, [1])
        """
        return SliceDataset(
            data,
            self.preprocess,
            slicer=self.slicer,
            slice_transform=self.slice_transform,
            transform=transform,
            image_key=self.image_key,
            label_key=self.label_key,
            skip_bad_files=self.skip_bad_files,
            report_path=self.report_path,
            progress=progress,
            cache_dtype=self.cache_dtype,
        )

    def check_files(self, data: Sequence[Mapping[str, Any]], name: str = "records", audit: bool = True) -> int:
        """Load ``data`` exactly as this dataset loads its own (preprocessing, slicing, slice transform) without
        keeping anything, and apply the same bad-file policy: an error listing every file that fails (or, with
        ``skip_bad_files``, a warning and a report). Training configs call it for the validation and test splits,
        so a corrupt file there stops the run before anything is written, not at evaluation. With ``audit``, it also
        warns of degenerate images and of images that are identical within or across this dataset and ``data``
        (:class:`~medsyn_monai.data.DataQualityReport`: leakage between the splits).

        Args:
            data: records, e.g. ``collection.data("val") + collection.data("test")``.
            name: what the records are, for messages.
            audit: warn of degenerate and duplicate images.

        Returns:
            the number of slices the records give.

        Raises:
            DataValidationError: files fail to load (without ``skip_bad_files``).

        Example:
            >>> import torch
            >>> train = SliceDataset([{"image": torch.zeros(1, 4, 4)}], preprocess=None)
            >>> train.check_files([{"image": torch.ones(1, 4, 4)}, {"image": torch.ones(1, 4, 4)}], "test split")
            2
        """
        records = list(data)
        problems_before = len(self.problems)
        images: list[torch.Tensor] = []
        names: list[str] = []
        for record in records:
            slices = self._load_record(record) or []
            for k, item in enumerate(slices):
                images.append(self._image_of(item, record))
                case_id = str(item.get("case_id", record.get("case_id", _record_path(record, self.image_key))))
                names.append(f"{case_id}#slice{k}" if len(slices) > 1 else case_id)
        found, self.problems = self.problems[problems_before:], self.problems[:problems_before]
        handle_problems(
            found,
            skip_bad_files=self.skip_bad_files,
            report_path=self.report_path,
            context=f"checking {len(records)} {name}",
            append=True,
            report_root=next((r["dataset_root"] for r in records if r.get("dataset_root")), None),
        )
        same = [i for i, im in enumerate(images) if im.shape == self.images.shape[1:]]
        if audit and same and len(self.images):
            checked = (torch.stack([images[i] for i in same]), [names[i] for i in same])
            DataQualityReport({"train": (self.images, image_names(self)), name: checked}).warn("training data")
        return len(images)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        out: dict[str, Any] = {"image": self.images[index].to(torch.float32), "case_id": self.case_ids[index]}
        if self.labels is not None:
            out[self.label_key] = self.labels[index]
        if self.transform is not None:
            out = self.transform(out)
        return out
