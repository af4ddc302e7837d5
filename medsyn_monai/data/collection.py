"""Find the images of a ``dataset_dir``, check them, and turn them into labelled, split records."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from medsyn_monai.data.dicom_reader import DICOM_SUFFIXES, is_dicom_file
from medsyn_monai.data.errors import BadFileError, DataValidationError, handle_problems
from medsyn_monai.data.loader import JPEG_SUFFIXES, NIFTI_SUFFIXES, PNG_SUFFIXES, TIFF_SUFFIXES, tiff_header_problem
from medsyn_monai.data.split import split_by_case
from medsyn_monai.utils.cli import as_bool
from medsyn_monai.utils.enums import DatasetLayout, SourceFormat, Split

__all__ = ["ImageCollection"]

logger = logging.getLogger(__name__)

DEFAULT_EXTENSIONS = DICOM_SUFFIXES + NIFTI_SUFFIXES + PNG_SUFFIXES + JPEG_SUFFIXES + TIFF_SUFFIXES
_DOC_SUFFIXES = (".md", ".txt", ".json", ".csv", ".npz", ".npy", ".yaml", ".yml", ".pdf", ".html", ".xml", ".zip")
_EXPECTED = "expected one of: class folders, a CSV manifest, a MedMNIST .npz, DICOM series folders or image files"
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_UNDEFINED_LENGTH = 0xFFFFFFFF
_SPLITS = tuple(str(s) for s in Split)


@dataclass
class _Case:
    """One case found on disk: a file, a series folder, or a list of DICOM files of one series."""

    image: str | list[str]
    source_format: SourceFormat
    case_id: str


@dataclass
class _DirScan:
    """What one folder (and its sub-folders) holds."""

    cases: list[_Case] = field(default_factory=list)
    n_candidates: int = 0  # image files found, good or bad
    own_series: set = field(default_factory=set)  # SeriesInstanceUIDs of the folder's own good DICOM files
    own_other: int = 0  # the folder's own non-DICOM image files
    nested_candidates: int = 0  # image files in sub-folders


def _name_suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _is_ignored(path: Path) -> bool:
    name = path.name
    return name.startswith(".") or name.startswith("__") or name.upper().startswith("README")


class ImageCollection:
    """The images of a ``dataset_dir``: layout detection, header checks, labels and a case-level split.

    Layouts (:class:`~medsyn_monai.utils.enums.DatasetLayout`), detected in this order:

    - ``csv``: exactly one ``*.csv`` at the root with a ``path`` column (``path,label[,split][,case_id]``; paths
      relative to the CSV's folder; empty label = unlabelled; ``split`` overrides the automatic split; ``case_id``
      defaults to the path). ``root`` may also be the CSV file itself.
    - ``npz``: a MedMNIST ``.npz`` at the root (or ``root`` is the file): ``{train,val,test}_images`` and
      ``_labels``; the split comes from the key, ``case_id`` is ``f"{split}_{index}"``, ``image`` is the array.
    - ``class_folders``: every sub-folder is a class, holding image files (one case each, DICOM files sharing a
      SeriesInstanceUID form one series case; a multi-page TIFF is one volume case) and/or DICOM series
      sub-folders (one case each).
    - ``series_folders``: every sub-folder is one DICOM series (its own files are DICOM slices of one series);
      unlabelled, one case per folder.
    - ``loose_files``: image files directly under the root (DICOM grouped into series by SeriesInstanceUID),
      possibly next to series folders; unlabelled.

    ``README*``, ``*.md``, ``*.txt``, ``*.json``, other ``*.csv`` and hidden files are ignored. Every file is checked
    at header level (not a DICOM file, unreadable or truncated header or pixel data, no pixel data, not a
    NIfTI/PNG/JPEG/TIFF file, a TIFF whose pixel data is truncated or whose layout, colour space or compression
    cannot be read), as are empty folders, CSV rows naming missing files and unknown labels. All problems are
    collected and passed to :func:`~medsyn_monai.data.handle_problems`: an error listing all of them, or (with
    ``skip_bad_files``) a warning, a CSV report at ``report_path`` and records without those files.

    Records are dicts ``{"image": path | list of DICOM paths | ndarray, "label": int, "class_name": str,
    "case_id": str, "split": "train" | "val" | "test", "source_format": str, "dataset_root": str}`` (``label`` and
    ``class_name`` only when labelled; ``dataset_root``: the folder that reports write paths relative to). A DICOM
    series is one record (its slices never end up in different splits).

    Args:
        root: the ``dataset_dir`` (a folder, or a ``.npz``/``.csv`` file).
        class_names: class names, label ``i`` being ``class_names[i]``. Default: sorted class folder names, the
            CSV's label names (or ``"0".."max"`` for integer labels), ``"0".."max"`` for npz.
        val_fraction: fraction of cases for validation (automatic split).
        test_fraction: fraction of cases for test (automatic split).
        seed: seed of the automatic split.
        skip_bad_files: skip bad files (and report them) instead of raising; the command-line spellings of
            :func:`~medsyn_monai.utils.as_bool` are accepted.
        report_path: CSV report of the skipped files (``path,stage,reason``).
        extensions: image file suffixes to consider (default: DICOM, NIfTI, PNG, JPEG, TIFF); files without a known
            suffix are still taken when they carry the DICOM preamble.

    Raises:
        DataValidationError: bad files (without ``skip_bad_files``), or no image at all.
        ValueError: bad arguments, mixed labelled and unlabelled records, several CSV manifests or npz files.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for c in ("benign", "malignant"):
        ...     (root / c).mkdir()
        ...     for i in range(5):
        ...         Image.fromarray(np.full((8, 8), i, np.uint8)).save(root / c / f"{i}.png")
        >>> col = ImageCollection(root, val_fraction=0.2, test_fraction=0.2)
        >>> str(col.layout), col.class_names, len(col), len(col.data("train"))
        ('class_folders', ['benign', 'malignant'], 10, 6)
    """

    def __init__(
        self,
        root: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        skip_bad_files: bool = False,
        report_path: str | os.PathLike | None = None,
        extensions: Sequence[str] | None = None,
    ) -> None:
        split_by_case([], None, val_fraction, test_fraction, seed)  # validates the fractions
        if class_names is not None:
            if isinstance(class_names, str):
                raise ValueError(f"class_names must be a sequence of names, got the string {class_names!r}.")
            class_names = [str(c) for c in class_names]
            if not class_names or any(not c for c in class_names) or len(set(class_names)) != len(class_names):
                raise ValueError(f"class_names must be unique, non-empty names, got {class_names}.")
        if extensions is None:
            self.extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
        else:
            if isinstance(extensions, str):
                extensions = [extensions]
            self.extensions = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
            if not self.extensions:
                raise ValueError("extensions must name at least one file suffix.")
        self.root = Path(root).expanduser()
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.seed = int(seed)
        self.skip_bad_files = as_bool(skip_bad_files, "skip_bad_files")
        self.report_path = None if report_path is None else Path(report_path)
        self._given_class_names = class_names
        self.class_names: list[str] | None = None
        self.problems: list[BadFileError] = []
        self.records: list[dict[str, Any]] = []
        self._fingerprint: str | None = None
        self.context = f"dataset_dir '{self.root}'"

        if not self.root.exists():
            raise DataValidationError(
                context=self.context,
                message=f"dataset_dir '{self.root}' does not exist, so it contains no images; {_EXPECTED}",
            )
        self.layout = self._discover()
        if self._given_class_names is not None and self.class_names is None and self.records:
            logger.warning(
                "class_names %s ignored: %s holds unlabelled %s data.", class_names, self.context, self.layout
            )
        labelled = [("label" in r) for r in self.records]
        if any(labelled) and not all(labelled):
            raise ValueError(
                f"{self.context} mixes labelled ({sum(labelled)}) and unlabelled ({len(labelled) - sum(labelled)}) "
                "images; give every image a label or none."
            )
        handle_problems(
            self.problems,
            skip_bad_files=self.skip_bad_files,
            report_path=self.report_path,
            context=self.context,
            append=False,
            report_root=self._base,
        )
        if not self.records:
            raise DataValidationError(
                self.problems,
                self.context,
                self.report_path,
                message=f"dataset_dir '{self.root}' contains no usable images"
                + (f" (all {len(self.problems)} found were bad and skipped)" if self.problems else ""),
            )

    # ------------------------------------------------------------------ public API
    @property
    def num_classes(self) -> int | None:
        """Number of classes, or ``None`` when unlabelled."""
        return None if self.class_names is None else len(self.class_names)

    @property
    def labelled(self) -> bool:
        """Whether the records carry labels."""
        return self.class_names is not None and bool(self.records) and "label" in self.records[0]

    def data(self, split: str | None = None) -> list[dict[str, Any]]:
        """Copies of the records, of one split or all.

        Args:
            split: ``"train"``, ``"val"``, ``"test"`` or ``None`` (all).

        Returns:
            list of record dicts (shallow copies).

        Raises:
            ValueError: unknown split.
        """
        if split is not None and str(split) not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS} or None, got {split!r}.")
        return [dict(r) for r in self.records if split is None or r["split"] == str(split)]

    def __len__(self) -> int:
        return len(self.records)

    def require_labels(self, purpose: str) -> ImageCollection:
        """Raise a clear error when the collection is unlabelled (``purpose`` needs class labels); returns ``self``.

        Raises:
            DataValidationError: no labels, or fewer than 2 classes.

        Example:
            >>> import tempfile
            >>> from PIL import Image
            >>> root = Path(tempfile.mkdtemp())
            >>> for i in range(3):
            ...     Image.new("L", (8, 8)).save(root / f"img_{i}.png")
            >>> ImageCollection(root, val_fraction=0.0, test_fraction=0.0).require_labels("an expert classifier")
            Traceback (most recent call last):
            ...
            medsyn_monai.data.errors.DataValidationError: an expert classifier needs class labels, but dataset_dir ...
        """
        if self.labelled and self.class_names is not None and len(self.class_names) >= 2:
            return self
        found = "unlabelled images" if not self.labelled else f"only the classes {self.class_names}"
        raise DataValidationError(
            context=self.context,
            message=f"{purpose} needs class labels, but {self.context} holds {found} ({self.layout} layout): point "
            "dataset_dir at one folder per class, a CSV manifest with a label column, or a labelled MedMNIST .npz "
            "(at least 2 classes).",
        )

    def fingerprint(self) -> str:
        """A content fingerprint of the data set: SHA-256 (first 16 hex digits) over every record's split, case id,
        label and the bytes of its files (with their paths relative to ``root``; an in-memory array by its shape,
        dtype and bytes). It changes when any image, label or split changes, never with where the data lie, and
        holds no path; training runs record it to tell on resume whether the data are the same.

        Example:
            >>> import tempfile
            >>> from PIL import Image
            >>> root = Path(tempfile.mkdtemp())
            >>> for i in range(4):
            ...     Image.new("L", (8, 8), color=i).save(root / f"img_{i}.png")
            >>> len(ImageCollection(root, val_fraction=0.0, test_fraction=0.0).fingerprint())
            16
        """
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for record in sorted(self.records, key=lambda r: (r["split"], str(r["case_id"]))):
                digest.update(f"{record['split']}|{record['case_id']}|{record.get('label')}\n".encode())
                self._hash_source(digest, record["image"])
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    def _hash_source(self, digest: Any, source: Any) -> None:
        if isinstance(source, np.ndarray):
            digest.update(f"{source.shape}|{source.dtype}\n".encode())
            digest.update(np.ascontiguousarray(source).tobytes())
            return
        paths = [Path(p) for p in source] if isinstance(source, (list, tuple)) else [Path(source)]
        files: list[Path] = []
        for path in paths:
            files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(f"{self._rel(file)}\n".encode())
            with open(file, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)

    def __repr__(self) -> str:
        counts = Counter(r["split"] for r in self.records)
        per_split = ", ".join(f"{s}={counts.get(s, 0)}" for s in _SPLITS)
        classes = "unlabelled" if self.class_names is None else f"classes={self.class_names}"
        skipped = f", skipped={len(self.problems)}" if self.problems else ""
        return (
            f"{self.__class__.__name__}(root='{self.root}', layout={self.layout}, cases: {per_split}, "
            f"{classes}{skipped})"
        )

    # ------------------------------------------------------------------ discovery
    def _no_images(self) -> DataValidationError:
        return DataValidationError(
            context=self.context, message=f"dataset_dir '{self.root}' contains no images; {_EXPECTED}"
        )

    def _discover(self) -> DatasetLayout:
        root = self.root
        if root.is_file():
            suffix = root.suffix.lower()
            if suffix == ".npz":
                self._read_npz(root)
                return DatasetLayout.NPZ
            if suffix == ".csv":
                self._read_csv(root)
                return DatasetLayout.CSV
            raise ValueError(f"dataset_dir must be a folder, a .npz or a .csv file, got the file '{root}'.")
        children = sorted(p for p in root.iterdir() if not _is_ignored(p))
        csvs = [p for p in children if p.is_file() and p.suffix.lower() == ".csv" and self._is_manifest(p)]
        if len(csvs) > 1:
            raise ValueError(
                f"{self.context} holds {len(csvs)} CSV manifests ({', '.join(p.name for p in csvs)}); keep exactly one."
            )
        if csvs:
            self._read_csv(csvs[0])
            return DatasetLayout.CSV
        npzs = [p for p in children if p.is_file() and p.suffix.lower() == ".npz" and self._is_medmnist(p)]
        if len(npzs) > 1:
            raise ValueError(f"{self.context} holds {len(npzs)} .npz files ({', '.join(p.name for p in npzs)}); "
                             "keep exactly one MedMNIST .npz.")  # fmt: skip
        if npzs:
            self._read_npz(npzs[0])
            return DatasetLayout.NPZ
        return self._read_folders(children)

    @staticmethod
    def _is_medmnist(path: Path) -> bool:
        try:
            with np.load(path, allow_pickle=False) as archive:
                return any(f"{s}_images" in archive.files for s in _SPLITS)
        except Exception:
            return False

    def _is_manifest(self, path: Path) -> bool:
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                header = next(csv.reader(f), [])
        except (OSError, UnicodeDecodeError):
            return False
        return "path" in [h.strip().lower() for h in header]

    def _candidate_format(self, path: Path) -> SourceFormat | None:
        """Format of an image file to consider, or ``None`` for a file to ignore."""
        if _is_ignored(path) or not path.is_file():
            return None
        suffix = _name_suffix(path)
        if suffix in self.extensions:
            if suffix in DICOM_SUFFIXES:
                return SourceFormat.DICOM
            if suffix in NIFTI_SUFFIXES:
                return SourceFormat.NIFTI
            if suffix in PNG_SUFFIXES:
                return SourceFormat.PNG
            if suffix in JPEG_SUFFIXES:
                return SourceFormat.JPEG
            if suffix in TIFF_SUFFIXES:
                return SourceFormat.TIFF
        if suffix in _DOC_SUFFIXES or suffix in DEFAULT_EXTENSIONS:
            return None
        return SourceFormat.DICOM if is_dicom_file(path) else None  # e.g. IM0001, 1.2.840.xxx.1

    def _check_file(self, path: Path, fmt: SourceFormat) -> tuple[str | None, BadFileError | None]:
        """Header-level check of one file. Returns (series key for DICOM, problem).

        The series key is the SeriesInstanceUID for slices that carry a position and orientation (they can be
        stacked), and a key unique to the file otherwise.
        """
        if fmt == SourceFormat.DICOM:
            return self._check_dicom(path)
        if fmt == SourceFormat.NIFTI:
            return None, self._check_nifti(path)
        if fmt == SourceFormat.TIFF:
            return None, self._check_tiff(path)
        return None, self._check_pil(path, fmt)

    def _check_dicom(self, path: Path) -> tuple[str | None, BadFileError | None]:
        try:
            ds = pydicom.dcmread(path, defer_size=1024, force=False)
        except pydicom.errors.InvalidDicomError:
            return None, BadFileError(path, "not a DICOM file (no 'DICM' preamble at byte 128)")
        except Exception as e:
            return None, BadFileError(path, f"unreadable or truncated DICOM header ({type(e).__name__}: {e})")
        tag = next((t for t in _PIXEL_TAGS if t in ds), None)
        if tag is None:
            hint = "" if "Rows" in ds else " (the header is incomplete: the file may be truncated)"
            return None, BadFileError(path, f"no pixel data{hint}")
        for keyword in ("Rows", "Columns", "BitsAllocated"):
            if keyword not in ds:
                return None, BadFileError(path, f"incomplete DICOM header: no {keyword}")
        tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if tsyntax is not None and not tsyntax.is_encapsulated:
            try:
                expected = int(pydicom.pixels.utils.get_expected_length(ds, "bytes"))
                elem = ds.get_item(tag, keep_deferred=True)
                tell = getattr(elem, "value_tell", None)
                length = getattr(elem, "length", None)
                if tell is not None and length is not None and length != _UNDEFINED_LENGTH:
                    available = min(int(length), max(0, os.path.getsize(path) - int(tell)))
                else:
                    value = ds[tag].value
                    available = len(value) if value is not None else 0
                if available < expected:
                    return None, BadFileError(path, f"truncated: pixel data has {available} bytes, expected {expected}")
            except Exception as e:  # a header inconsistent enough to break the computation
                return None, BadFileError(path, f"inconsistent pixel description: {type(e).__name__}: {e}")
        uid = ds.get("SeriesInstanceUID")
        has_geometry = "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds
        if not uid or not has_geometry or int(ds.get("NumberOfFrames", 1) or 1) > 1:
            # no slice geometry (e.g. projection X-ray) or a multi-frame file: an image of its own, never stacked
            return f"<single file: {path}>", None
        return str(uid), None

    def _check_nifti(self, path: Path) -> BadFileError | None:
        import nibabel

        try:
            img = nibabel.load(str(path))
            if _name_suffix(path) == ".nii" and isinstance(img, nibabel.spatialimages.SpatialImage):
                proxy = img.dataobj  # an uncompressed .nii file's data: nibabel's ArrayProxy, which knows its offset
                assert isinstance(proxy, nibabel.arrayproxy.ArrayProxy)  # anything else: not a readable file
                expected = int(proxy.offset) + int(np.prod(img.shape)) * img.get_data_dtype().itemsize
                size = os.path.getsize(path)
                if size < expected:
                    return BadFileError(path, f"truncated: file has {size} bytes, expected {expected}")
        except Exception as e:
            return BadFileError(path, f"not a readable NIfTI file ({type(e).__name__}: {e})")
        return None

    def _check_pil(self, path: Path, fmt: SourceFormat) -> BadFileError | None:
        from PIL import Image

        name = "PNG" if fmt == SourceFormat.PNG else "JPEG"
        try:
            with Image.open(path) as im:
                if im.width < 1 or im.height < 1:
                    return BadFileError(path, f"empty {name} image ({im.width}x{im.height})")
        except Exception as e:
            return BadFileError(path, f"not a {name} image ({type(e).__name__}: {e})")
        return None

    @staticmethod
    def _check_tiff(path: Path) -> BadFileError | None:
        problem = tiff_header_problem(path)
        return None if problem is None else BadFileError(path, problem)

    @property
    def _base(self) -> Path:
        """The folder that relative paths start from: ``root``, or the folder of a ``root`` file (CSV, .npz)."""
        return self.root if self.root.is_dir() else self.root.parent

    def _rel(self, path: Path) -> str:
        base = self._base
        try:
            rel = path.relative_to(base).as_posix()
        except ValueError:
            rel = path.as_posix()
        return rel

    def _scan_own_files(self, folder: Path, top: Path, scan: _DirScan) -> None:
        """Make cases of the image files directly in ``folder`` (DICOM grouped by series)."""
        groups: dict[str, list[Path]] = {}
        bad_dicom = False
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            fmt = self._candidate_format(path)
            if fmt is None:
                continue
            scan.n_candidates += 1
            uid, problem = self._check_file(path, fmt)
            if fmt != SourceFormat.DICOM:
                scan.own_other += 1
            if problem is not None:
                self.problems.append(problem)
                bad_dicom = bad_dicom or fmt == SourceFormat.DICOM
                continue
            if fmt == SourceFormat.DICOM:
                groups.setdefault(str(uid), []).append(path)
            else:
                scan.cases.append(_Case(str(path), fmt, self._rel(path)))
        scan.own_series.update(groups)
        folder_id = self._rel(folder)
        folder_id = folder.name if folder_id in ("", ".") else folder_id
        whole = len(groups) == 1 and not bad_dicom
        # series are named by their order in the folder (by first file), never by their UID: a case id reaches reports
        for k, (_, files) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[1][0]))):
            if whole and (folder != top or len(files) > 1):
                scan.cases.append(_Case(str(folder), SourceFormat.DICOM_SERIES, folder_id))
            elif len(files) == 1:
                scan.cases.append(_Case(str(files[0]), SourceFormat.DICOM, self._rel(files[0])))
            else:
                scan.cases.append(_Case([str(f) for f in files], SourceFormat.DICOM_SERIES, f"{folder_id}#series{k}"))

    def _scan_tree(self, folder: Path, top: Path) -> _DirScan:
        """Scan ``folder`` and its sub-folders; report empty sub-folders."""
        scan = _DirScan()
        self._scan_own_files(folder, top, scan)
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not _is_ignored(p)):
            child = self._scan_tree(sub, top)
            if child.n_candidates == 0:
                self.problems.append(BadFileError(sub, "empty folder: no image files"))
            scan.cases.extend(child.cases)
            scan.nested_candidates += child.n_candidates
            scan.n_candidates += child.n_candidates
        return scan

    def _read_folders(self, children: list[Path]) -> DatasetLayout:
        root_scan = _DirScan()
        self._scan_own_files(self.root, self.root, root_scan)
        subs: dict[Path, _DirScan] = {}
        n_problems = len(self.problems)
        for sub in (p for p in children if p.is_dir()):
            subs[sub] = self._scan_tree(sub, sub)
        total = root_scan.n_candidates + sum(s.n_candidates for s in subs.values())
        if total == 0:
            del self.problems[n_problems:]  # only "empty folder" reports: the whole root is empty
            raise self._no_images()

        def series_like(s: _DirScan) -> bool:
            return s.own_other == 0 and len(s.own_series) <= 1 and s.nested_candidates == 0

        non_empty = {p: s for p, s in subs.items() if s.n_candidates > 0}
        empty = [p for p, s in subs.items() if s.n_candidates == 0]
        class_like = [p for p, s in non_empty.items() if not series_like(s)]
        if class_like:
            for path in empty:
                self.problems.append(BadFileError(path, "empty class folder: no image files"))
            for case in root_scan.cases:
                self.problems.append(
                    BadFileError(
                        case.image if isinstance(case.image, str) else case.image[0],
                        "image at the top of dataset_dir next to class folders; move it into a class folder",
                    )
                )
            names = [p.name for p in non_empty]
            if self._given_class_names is not None:
                self.class_names = list(self._given_class_names)
            else:
                self.class_names = sorted(names)
            cases, labels = [], []
            for path, scan in non_empty.items():
                if path.name not in self.class_names:
                    self.problems.append(
                        BadFileError(path, f"class folder {path.name!r} is not in class_names {self.class_names}")
                    )
                    continue
                label = self.class_names.index(path.name)
                for case in scan.cases:
                    cases.append(case)
                    labels.append(label)
            self._make_records(cases, labels)
            return DatasetLayout.CLASS_FOLDERS
        for path in empty:
            self.problems.append(BadFileError(path, "empty folder: no image files"))
        cases = list(root_scan.cases)
        for scan in non_empty.values():
            cases.extend(scan.cases)
        self._make_records(cases, None)
        return DatasetLayout.LOOSE_FILES if root_scan.n_candidates else DatasetLayout.SERIES_FOLDERS

    def _make_records(
        self,
        cases: list[_Case],
        labels: list[int] | None,
        fixed_splits: dict[str, str] | None = None,
    ) -> None:
        fixed_splits = fixed_splits or {}
        auto = [i for i, c in enumerate(cases) if c.case_id not in fixed_splits]
        splits = split_by_case(
            [cases[i].case_id for i in auto],
            None if labels is None else [labels[i] for i in auto],
            self.val_fraction,
            self.test_fraction,
            self.seed,
        )
        splits.update(fixed_splits)
        for i, case in enumerate(cases):
            record: dict[str, Any] = {"image": case.image}
            if labels is not None and labels[i] is not None:
                record["label"] = int(labels[i])
                record["class_name"] = self.class_names[labels[i]] if self.class_names else str(labels[i])
            record.update(
                case_id=case.case_id,
                split=splits[case.case_id],
                source_format=str(case.source_format),
                dataset_root=str(self._base),
            )
            self.records.append(record)

    # ------------------------------------------------------------------ CSV
    def _read_csv(self, path: Path) -> None:
        base = path.parent
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                fields = {(h or "").strip().lower(): h for h in (reader.fieldnames or [])}
                rows = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise ValueError(f"cannot read the CSV manifest '{path}': {e}") from e
        if "path" not in fields:
            raise ValueError(f"the CSV manifest '{path}' has no 'path' column (columns: {list(fields)}).")

        def cell(row: dict, column: str) -> str:
            key = fields.get(column)
            return "" if key is None or row.get(key) is None else str(row[key]).strip()

        raw_labels = [cell(r, "label") for r in rows]
        has = [bool(v) for v in raw_labels]
        if any(has) and not all(has):
            example = next(i for i, v in enumerate(has) if not v) + 2
            raise ValueError(
                f"the CSV manifest '{path}' mixes labelled ({sum(has)}) and unlabelled ({len(has) - sum(has)}) rows "
                f"(e.g. row {example} has no label); give every row a label or none."
            )
        labelled = bool(rows) and all(has)
        targets = []
        for row in rows:
            target = Path(cell(row, "path")).expanduser()
            targets.append(target if target.is_absolute() else base / target)
        label_of_row = self._csv_labels(path, targets, raw_labels) if labelled else [None] * len(rows)
        cases: list[_Case] = []
        labels: list[int | None] = []
        fixed: dict[str, str] = {}
        for i, row in enumerate(rows):
            line = i + 2
            text = cell(row, "path")
            if not text:
                self.problems.append(BadFileError(f"{path}:{line}", "empty path"))
                continue
            target = targets[i]
            if label_of_row[i] is False:
                continue  # unknown label, already reported
            split = cell(row, "split").lower()
            if split and split not in _SPLITS:
                self.problems.append(
                    BadFileError(target, f"invalid split {split!r} in {path.name} row {line}; expected {_SPLITS}")
                )
                continue
            if not target.exists():
                self.problems.append(BadFileError(target, f"listed in {path.name} row {line} but does not exist"))
                continue
            case_id = cell(row, "case_id") or text
            found = self._csv_target_cases(target, case_id, path.name, line)
            for case in found:
                cases.append(case)
                labels.append(label_of_row[i])
                if split:
                    fixed.setdefault(case.case_id, split)
        self._make_records(cases, [int(v) for v in labels if v is not None] if labelled else None, fixed)

    def _csv_labels(self, path: Path, targets: list[Path], raw: list[str]) -> list[int | bool]:
        """Label index per row, or ``False`` for an unknown label (reported)."""
        ints = [v for v in raw if re.fullmatch(r"[+-]?\d+", v)]
        names = self._given_class_names
        all_ints = len(ints) == len(raw)
        if names is None:
            if all_ints:
                top = max([int(v) for v in raw if int(v) >= 0], default=-1)
                self.class_names = [str(k) for k in range(top + 1)]
            else:
                self.class_names = sorted(set(raw))
        else:
            self.class_names = list(names)
        out: list[int | bool] = []
        for i, v in enumerate(raw):
            line = i + 2
            if v in self.class_names and not (all_ints and names is None):
                out.append(self.class_names.index(v))
            elif re.fullmatch(r"[+-]?\d+", v) and 0 <= int(v) < len(self.class_names):
                out.append(int(v))
            else:
                self.problems.append(
                    BadFileError(
                        targets[i], f"unknown label {v!r} in {path.name} row {line}; class_names = {self.class_names}"
                    )
                )
                out.append(False)
        return out

    def _csv_target_cases(self, target: Path, case_id: str, csv_name: str, line: int) -> list[_Case]:
        if target.is_dir():
            scan = _DirScan()
            self._scan_own_files(target, target, scan)
            if scan.n_candidates == 0:
                self.problems.append(BadFileError(target, f"folder listed in {csv_name} row {line} holds no images"))
                return []
            if len(scan.cases) == 1:  # the folder (or its good files) is one case
                return [_Case(scan.cases[0].image, scan.cases[0].source_format, case_id)]
            return [_Case(c.image, c.source_format, f"{case_id}#{k}") for k, c in enumerate(scan.cases)]
        fmt = self._candidate_format(target)
        if fmt is None:
            self.problems.append(
                BadFileError(
                    target, f"listed in {csv_name} row {line} but is not a DICOM, NIfTI, PNG, JPEG or TIFF file"
                )
            )
            return []
        _, problem = self._check_file(target, fmt)
        if problem is not None:
            self.problems.append(problem)
            return []
        return [_Case(str(target), fmt, case_id)]

    # ------------------------------------------------------------------ npz
    def _read_npz(self, path: Path) -> None:
        try:
            archive = np.load(path, allow_pickle=False)
            keys = set(archive.files)
        except Exception as e:
            self.problems.append(BadFileError(path, f"cannot read the .npz file ({type(e).__name__}: {e})"))
            return
        present = [s for s in _SPLITS if f"{s}_images" in keys]
        if not present:
            self.problems.append(
                BadFileError(
                    path, f"not a MedMNIST .npz: no train_images/val_images/test_images (keys: {sorted(keys)})"
                )
            )
            return
        images: dict[str, np.ndarray] = {}
        labels: dict[str, np.ndarray | None] = {}
        for split in present:
            try:
                images[split] = archive[f"{split}_images"]
                lab = archive[f"{split}_labels"] if f"{split}_labels" in keys else None
            except Exception as e:
                self.problems.append(BadFileError(f"{path}:{split}", f"cannot read arrays ({type(e).__name__}: {e})"))
                images.pop(split, None)
                continue
            if lab is not None:
                lab = np.asarray(lab)
                if lab.ndim == 2 and lab.shape[1] == 1:
                    lab = lab[:, 0]
                if lab.ndim != 1:
                    raise ValueError(
                        f"{path}: {split}_labels has shape {lab.shape}; only one integer label per image is supported "
                        "(multi-label MedMNIST sets are not)."
                    )
                if len(lab) != len(images[split]):
                    self.problems.append(
                        BadFileError(
                            f"{path}:{split}_labels",
                            f"{len(lab)} labels for {len(images[split])} images in {split}_images",
                        )
                    )
                    images.pop(split)
                    continue
            labels[split] = lab
        has = [labels[s] is not None for s in images]
        if any(has) and not all(has):
            raise ValueError(f"{path}: some splits have labels and others not ({sorted(labels)}); label all or none.")
        labelled = bool(has) and all(has)
        if labelled:
            if self._given_class_names is not None:
                self.class_names = list(self._given_class_names)
                n_classes = len(self.class_names)
            else:
                sizes = [lab for lab in labels.values() if lab is not None and len(lab)]
                top = max((int(lab.max()) for lab in sizes), default=-1)
                n_classes = top + 1
                self.class_names = [str(k) for k in range(n_classes)]
        for split, arr in images.items():
            lab = labels.get(split)
            for i in range(len(arr)):
                case_id = f"{split}_{i}"
                record: dict[str, Any] = {"image": arr[i]}
                if lab is not None:
                    value = int(lab[i])
                    if value < 0 or value >= n_classes:
                        self.problems.append(
                            BadFileError(
                                f"{path}:{split}_images[{i}]",
                                f"unknown label {value}; class_names has {n_classes} classes {self.class_names}",
                            )
                        )
                        continue
                    record["label"] = value
                    record["class_name"] = self.class_names[value] if self.class_names is not None else str(value)
                record.update(
                    case_id=case_id, split=split, source_format=str(SourceFormat.NPZ), dataset_root=str(self._base)
                )
                self.records.append(record)
