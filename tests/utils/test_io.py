"""atomic_write, json_ready and write_json: all-or-nothing writes and strict JSON (no NaN, string keys); weights-only
loading of .pt files, stale temporary files of killed writes, file hashes."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from medsyn_monai.utils.io import (
    UnsafeCheckpointError,
    atomic_write,
    file_sha256,
    json_ready,
    load_torch_file,
    remove_stale_temp_files,
    write_json,
)
from tests._helpers import save_crafted_pickle


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


def test_atomic_write_syncs_before_replacing_and_gives_ordinary_permissions(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    synced = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:  # at fsync time the data are complete and the final file does not exist yet
        synced.append((os.fstat(fd).st_size, path.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(b"x" * 1000))
    assert synced == [(1000, False)]
    plain = tmp_path / "plain.txt"
    plain.write_text("made by open()")  # what the umask gives an ordinary new file (mkstemp alone gives 0600)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_file_sha256_over_chunks(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (1 << 20) + 12345, dtype=np.uint8).tobytes()  # > one chunk
    (tmp_path / "big.bin").write_bytes(data)
    (tmp_path / "empty.bin").write_bytes(b"")
    assert file_sha256(tmp_path / "big.bin") == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(tmp_path / "empty.bin")) == hashlib.sha256(b"").hexdigest()
    (tmp_path / "big.bin").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # the last byte differs
    assert file_sha256(tmp_path / "big.bin") != hashlib.sha256(data).hexdigest()


def test_remove_stale_temp_files_only_those_of_atomic_write(tmp_path, caplog):
    names = []
    atomic_write(tmp_path / "checkpoint.pt", lambda tmp: names.append(Path(tmp).name) or Path(tmp).write_bytes(b"ok"))
    stale = [names[0], ".model.pt.k2j3_x9a.tmp", ".train_log.csv.AB12.tmp"]  # the first: a real temporary name
    for name in stale:
        (tmp_path / name).write_bytes(b"half written")
    kept = ["checkpoint.pt", "notes.tmp", ".x.tmp", ".hidden", "model.pt.tmp", ".a.b.tmp.bak"]
    for name in kept[1:]:
        (tmp_path / name).write_bytes(b"keep")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".model.pt.abc.tmp").write_bytes(b"not in the folder itself")
    (tmp_path / ".dir.abc.tmp").mkdir()  # a folder with such a name is no temporary file
    with caplog.at_level(logging.WARNING, logger="medsyn_monai.utils.io"):
        removed = remove_stale_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == sorted(stale)
    assert _names(tmp_path) == sorted([*kept, "sub", ".dir.abc.tmp"])
    assert (tmp_path / "sub" / ".model.pt.abc.tmp").exists() and (tmp_path / "checkpoint.pt").read_bytes() == b"ok"
    assert "removed 3 temporary file(s)" in caplog.text and ".model.pt.k2j3_x9a.tmp" in caplog.text
    assert remove_stale_temp_files(tmp_path) == [] and remove_stale_temp_files(tmp_path / "absent") == []


def test_load_torch_file_weights_only(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"weight": torch.arange(3.0), "epoch": 3, "settings": {"lr": 0.1, "channels": [8, 16]}}, path)
    loaded = load_torch_file(path)
    assert torch.equal(loaded["weight"], torch.arange(3.0)) and loaded["settings"] == {"lr": 0.1, "channels": [8, 16]}
    with pytest.raises(FileNotFoundError, match=r"weights file .*absent\.pt not found"):
        load_torch_file(tmp_path / "absent.pt", "weights file")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_torch_file(tmp_path, "weights file")  # a folder is no file


def test_load_torch_file_refuses_code_and_names_the_file(tmp_path):
    marker = tmp_path / "code_ran"
    path = save_crafted_pickle(tmp_path / "crafted.pt", marker)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_torch_file(path, "pretrained weights")
    msg = str(info.value)
    assert msg.startswith(f"refused to load pretrained weights {path}:") and "arbitrary code" in msg
    assert "open" in msg and "state_dict" in msg  # the global it refused and how to make a safe file
    assert isinstance(info.value, ValueError) and not marker.exists()


@pytest.mark.parametrize(
    "content, reason",
    [
        ("truncated", "not a complete PyTorch file"),
        (b"", "not a complete PyTorch file"),
        (b"hello world, not a checkpoint", "not a complete PyTorch file"),
        (b"not a checkpoint", "not a weights-only PyTorch file"),
        (b"\x80", "not a complete PyTorch file"),
    ],
)
def test_load_torch_file_corrupt_is_value_error(tmp_path, content, reason):
    path = tmp_path / "checkpoint.pt"
    if content == "truncated":
        torch.save({"weight": torch.zeros(100)}, path)
        content = path.read_bytes()[:300]
    path.write_bytes(content)
    with pytest.raises(ValueError, match=reason) as info:
        load_torch_file(path)
    assert not isinstance(info.value, UnsafeCheckpointError) and f"cannot read checkpoint {path}:" in str(info.value)
