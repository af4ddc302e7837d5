"""Errors raised for bad input files, and the policy that reports or skips them.

Every problem found in a dataset (at discovery or while loading) becomes a :class:`BadFileError`. The problems are
collected and handed to :func:`handle_problems`, which either raises one :class:`DataValidationError` listing all of
them, or (``skip_bad_files=True``) logs them and writes a CSV report ``path,stage,reason``.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BadFileError", "DataValidationError", "handle_problems"]

_STAGES = ("discovery", "load")
_SKIP_HINT = "set skip_bad_files=True (command line: --skip_bad_files true) to skip these files and write their list to"


class BadFileError(ValueError):
    """One input file (or folder) that cannot be used.

    Args:
        path: the file or folder at fault (any path-like, or a label such as ``"data.npz:train_images[3]"``).
        reason: a short human explanation of what is wrong with it.
        stage: ``"discovery"`` (found while scanning the dataset) or ``"load"`` (found while reading pixels).

    Raises:
        ValueError: when ``stage`` is not one of ``"discovery"``, ``"load"``.

    Example:
        >>> e = BadFileError("/data/a.dcm", "not a DICOM file")
        >>> str(e), e.stage
        ('/data/a.dcm: not a DICOM file', 'discovery')
    """

    def __init__(self, path: str | os.PathLike, reason: str, stage: str = "discovery") -> None:
        if stage not in _STAGES:
            raise ValueError(f"stage must be one of {_STAGES}, got {stage!r}.")
        self.path = str(path)
        self.reason = str(reason)
        self.stage = stage
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # keep the three attributes when pickled (e.g. by multiprocessing)
        return (self.__class__, (self.path, self.reason, self.stage))


class DataValidationError(ValueError):
    """Raised when a dataset holds bad files (all of them listed), or holds no usable image at all.

    Args:
        problems: every problem found.
        context: where the problems were found, e.g. ``"dataset_dir '/data/ct'"``.
        report_path: where ``skip_bad_files=True`` would write the list of skipped files (shown in the hint).
        message: a message to use instead of the default one (the problems are still listed under it).

    Example:
        >>> err = DataValidationError([BadFileError("a.dcm", "no pixel data")], "dataset_dir 'x'", "bad.csv")
        >>> print(err)  # doctest: +NORMALIZE_WHITESPACE
        1 bad file in dataset_dir 'x':
          a.dcm: no pixel data
        set skip_bad_files=True (command line: --skip_bad_files true) to skip these files and write their list
        to bad.csv
    """

    def __init__(
        self,
        problems: Sequence[BadFileError] = (),
        context: str = "the dataset",
        report_path: str | os.PathLike | None = None,
        message: str | None = None,
    ) -> None:
        self.problems = list(problems)
        self.context = context
        self.report_path = None if report_path is None else str(report_path)
        lines = [f"  {p.path}: {p.reason}" for p in self.problems]
        if message is not None:
            text = "\n".join([message, *lines])
        else:
            n = len(self.problems)
            report = self.report_path if self.report_path is not None else "a CSV report (set report_path)"
            head = f"{n} bad file{'s' if n != 1 else ''} in {context}:"
            text = "\n".join([head, *lines, f"{_SKIP_HINT} {report}"])
        super().__init__(text)


def _relative(path: str, root: str | os.PathLike | None) -> str:
    """``path`` relative to ``root`` when it lies under it (labels such as ``data.npz:train[3]`` too)."""
    if root is None:
        return path
    base = os.path.abspath(root)
    file, sep, rest = path.partition(".npz:") if ".npz:" in path else (path, "", "")
    full = os.path.abspath(file + (".npz" if sep else ""))
    if os.path.commonpath([base, full]) != base:
        return path
    rel = Path(os.path.relpath(full, base)).as_posix()
    return f"{rel}:{rest}" if sep else rel


def _relative_text(text: str, root: str | os.PathLike | None) -> str:
    """``text`` (e.g. a reason quoting the file) with the paths under ``root`` written relative to it."""
    if root is None:
        return text
    base = os.path.abspath(root)
    text = text.replace(base + os.sep, "")
    return re.sub(re.escape(base) + r"(?=$|[\s'\":;,)\]])", ".", text)  # the folder itself, not /data2 of /data


def handle_problems(
    problems: Sequence[BadFileError],
    *,
    skip_bad_files: bool,
    report_path: str | os.PathLike | None,
    context: str,
    append: bool = False,
    report_root: str | os.PathLike | None = None,
) -> None:
    """Raise for, or skip and report, the problems found in a dataset.

    Nothing happens when ``problems`` is empty. Otherwise, without ``skip_bad_files`` the full list is logged as an
    error and a :class:`DataValidationError` is raised; with ``skip_bad_files`` each file is logged as a warning and,
    when ``report_path`` is given, written to that CSV (``path,stage,reason``). Nothing but ``report_path`` is
    ever written.

    Args:
        problems: the problems found.
        skip_bad_files: skip the bad files instead of raising.
        report_path: CSV file listing the skipped files; its parent folders are created. ``None``: no report.
        context: where the problems were found (used in messages), e.g. ``"dataset_dir '/data/ct'"``.
        append: add rows to an existing report instead of replacing it (no second header line).
        report_root: the data set's folder: report paths under it (in the ``path`` and ``reason`` columns) are
            written relative to it (the report holds no absolute input path); messages keep the full paths.

    Raises:
        DataValidationError: when there are problems and ``skip_bad_files`` is false.

    Example:
        >>> handle_problems([], skip_bad_files=False, report_path=None, context="x")  # no problems: no-op
    """
    problems = list(problems)
    if not problems:
        return
    logger = logging.getLogger(__name__)
    if not skip_bad_files:
        err = DataValidationError(problems, context, report_path)
        logger.error(str(err))
        raise err
    for p in problems:
        logger.warning("skipping bad file in %s (%s): %s: %s", context, p.stage, p.path, p.reason)
    if report_path is None:
        return
    report = Path(report_path)
    report.parent.mkdir(parents=True, exist_ok=True)
    write_header = not (append and report.is_file() and report.stat().st_size > 0)
    with open(report, "a" if append else "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if write_header:
            writer.writerow(["path", "stage", "reason"])
        for p in problems:
            writer.writerow([_relative(p.path, report_root), p.stage, _relative_text(p.reason, report_root)])
    logger.warning("%d bad file(s) skipped in %s; list written to %s", len(problems), context, report)
