"""atomic_write, json_ready and write_json: all-or-nothing writes and strict JSON (no NaN, string keys)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from medsyn_monai.utils.io import atomic_write, json_ready, write_json


def _names(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden temporary files included."""
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_creates_folders_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "x.bin"
    seen = []

    def write(tmp: str) -> None:
        seen.append(Path(tmp))
        Path(tmp).write_bytes(b"first")

    assert atomic_write(path, write) == path and path.read_bytes() == b"first"
    # the writer got a temporary file beside the target, not the target itself
    assert seen[0].parent == path.parent and seen[0] != path and seen[0].name.startswith(".x.bin.")
    atomic_write(str(path), lambda tmp: Path(tmp).write_bytes(b"second"))
    assert path.read_bytes() == b"second" and _names(path.parent) == ["x.bin"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_atomic_write_failure_keeps_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "report.json"
    path.write_text("old")

    def half_written(tmp: str) -> None:
        Path(tmp).write_text("ne")
        raise error

    with pytest.raises(type(error)):
        atomic_write(path, half_written)
    assert path.read_text() == "old" and _names(tmp_path) == ["report.json"]


def test_atomic_write_failure_after_the_temporary_file_is_gone(tmp_path):
    """A writer that fails after removing its temporary file: the writer's error propagates, not a cleanup error."""
    path = tmp_path / "x.txt"

    def remove_then_fail(tmp: str) -> None:
        Path(tmp).unlink()
        raise ValueError("gone")

    with pytest.raises(ValueError, match="gone"):
        atomic_write(path, remove_then_fail)
    assert _names(tmp_path) == []


def test_json_ready_converts_recursively():
    obj = {
        1: (np.float32(1.5), np.int64(3), np.bool_(True)),
        "t": torch.tensor([[1.0, float("nan")], [float("inf"), -2.0]]),
        "a": np.array([-np.inf, 0.25]),
        "nested": [{"x": float("-inf")}, "text", None, True],
        "p": Path("/data"),
    }
    out = json_ready(obj)
    assert out == {
        "1": [1.5, 3, True],
        "t": [[1.0, None], [None, -2.0]],
        "a": [None, 0.25],
        "nested": [{"x": None}, "text", None, True],
        "p": Path("/data"),  # left to the writer (write_json writes it as a string)
    }
    assert type(out["1"][1]) is int and type(out["1"][2]) is bool and type(out["t"][0][0]) is float
    json.dumps(out["t"], allow_nan=False)  # strict JSON accepts it now
    assert json_ready(torch.tensor(7)) == 7 and json_ready(np.float64("nan")) is None
    assert math.isnan(obj["t"][0, 1])  # the input is not modified


def test_write_json_strict_sorted_and_atomic(tmp_path):
    path = tmp_path / "out" / "metrics.json"
    written = write_json(path, {"b": float("nan"), "a": torch.tensor([1, 2]), "p": Path("/x/y")}, sort_keys=True)
    text = path.read_text()
    assert written == path and text.endswith("}\n") and "NaN" not in text
    assert text.startswith('{\n  "a": [\n    1,')  # indented by 2, keys sorted
    assert json.loads(text) == {"a": [1, 2], "b": None, "p": "/x/y"}
    write_json(path, {"z": 1, "a": 2})  # insertion order without sort_keys; replaces the old file
    assert list(json.loads(path.read_text())) == ["z", "a"] and _names(path.parent) == ["metrics.json"]
