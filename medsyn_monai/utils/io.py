"""Atomic file writes and strict-JSON conversion shared by checkpoints, reports and model info."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["atomic_write", "json_ready", "write_json"]


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then move it into place with ``os.replace``.

    An interrupted write never leaves a half-written ``path``; the temporary file is removed on failure.

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
