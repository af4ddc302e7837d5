"""Atomic file writes and strict-JSON conversion shared by checkpoints, reports and model info."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import pickle
import re
import struct
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "UnsafeCheckpointError",
    "atomic_write",
    "file_sha256",
    "json_ready",
    "load_torch_file",
    "remove_stale_temp_files",
    "write_csv",
    "write_json",
]

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: the permissions a plain open() would give new files
#: temporary files of :func:`atomic_write`: ``.<name>.<random>.tmp`` beside the final file
_TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then move it into place with ``os.replace``.

    An interrupted write never leaves a half-written ``path``; the temporary file is removed on failure (one left
    by a killed process is removed by :func:`remove_stale_temp_files`).

    Example:
        >>> import tempfile
        >>> p = atomic_write(Path(tempfile.mkdtemp()) / "a" / "x.txt", lambda tmp: Path(tmp).write_text("hi"))
        >>> p.read_text()
        'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:  # on disk before the rename, so a crash never leaves an empty file in place
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600 files; give the permissions of an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def json_ready(obj: Any) -> Any:
    """``obj`` for strict JSON: tensors/arrays as (nested) lists or scalars, NaN/inf as ``None``, keys as strings.

    Example:
        >>> json_ready({"a": float("nan"), "b": torch.tensor(2.0), 3: np.array([1, 2])})
        {'a': None, 'b': 2.0, '3': [1, 2]}
    """
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (torch.Tensor, np.ndarray, np.generic)):
        return json_ready(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, obj: Any, sort_keys: bool = False) -> Path:
    """Write ``json_ready(obj)`` (indented, strict JSON, trailing newline) to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(json_ready(obj), f, indent=2, sort_keys=sort_keys, allow_nan=False, default=str)
            f.write("\n")

    return atomic_write(path, write)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], fieldnames: Sequence[str]) -> Path:
    """Write ``rows`` (dicts with the keys ``fieldnames``) as CSV with a header to ``path`` atomically.

    Example:
        >>> import tempfile
        >>> p = write_csv(Path(tempfile.mkdtemp()) / "t.csv", [{"a": 1, "b": "x"}], ["a", "b"])
        >>> p.read_text()
        'a,b\\n1,x\\n'
    """

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(fieldnames), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(path, write)


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Remove the temporary files that :func:`atomic_write` left in ``folder`` when its process was killed.

    Only files named as :func:`atomic_write` names them (``.<name>.<random>.tmp``) are removed, and only in
    ``folder`` itself. Call it when no other process can be writing there (e.g. under a
    :class:`~medsyn_monai.utils.RunLock`).

    Returns:
        the files removed.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / ".model.pt.k2j3_x9a.tmp").write_bytes(b"half"), (d / "model.pt").write_bytes(b"ok")
        >>> [p.name for p in remove_stale_temp_files(d)], sorted(p.name for p in d.iterdir())
        (['.model.pt.k2j3_x9a.tmp'], ['model.pt'])
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and _TEMP_PATTERN.match(path.name):
            path.unlink()
            removed.append(path)
    if removed:
        logging.getLogger(__name__).warning(
            "removed %d temporary file(s) left in %s by an interrupted save: %s",
            len(removed),
            folder,
            ", ".join(p.name for p in removed),
        )
    return removed


class UnsafeCheckpointError(ValueError):
    """A ``.pt`` file that cannot be loaded with ``torch.load(weights_only=True)``: it holds Python objects other
    than tensors and plain types, and unpickling them could run arbitrary code."""


def load_torch_file(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, with errors that name the file and say why.

    Only tensors and plain Python types (dicts, lists, numbers, strings) are unpickled, so a crafted file cannot run
    code; every checkpoint this package writes loads this way.

    Args:
        path: the file.
        what: what the file is, for messages (e.g. ``"checkpoint"``, ``"weights file"``).

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file needs code execution to load (refused).
        ValueError: not a readable PyTorch file (e.g. truncated).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "w.pt"
        >>> torch.save({"weight": torch.ones(2), "epoch": 3}, p)
        >>> load_torch_file(p)["epoch"]
        3
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        detail = next((line for line in lines if "GLOBAL" in line or "global" in line), None)
        if detail is None:  # not a pickle of plain types at all (e.g. another file renamed .pt)
            problem = next((line for line in lines if line.startswith("Unsupported")), lines[0] if lines else "")
            raise ValueError(
                f"cannot read {what} {path}: not a weights-only PyTorch file ({problem}); it may be corrupt or not a "
                ".pt file written by torch.save."
            ) from e
        raise UnsafeCheckpointError(
            f"refused to load {what} {path}: it holds Python objects other than tensors and plain types, and "
            f"loading them could run arbitrary code ({detail}). medsyn_monai writes and reads weights-only "
            "files; use a checkpoint written by medsyn_monai, or one you trust re-saved as a state_dict "
            "(torch.save(model.state_dict(), path))."
        ) from e
    except (RuntimeError, EOFError, OSError, KeyError, IndexError, ValueError, struct.error) as e:
        # what torch's legacy (non-zip) reader raises for bytes that are no pickle: "invalid load key" as a
        # KeyError, IndexError, UnicodeDecodeError, ...
        raise ValueError(
            f"cannot read {what} {path}: not a complete PyTorch file ({type(e).__name__}: {e}); it may be truncated "
            "or not a .pt file."
        ) from e
