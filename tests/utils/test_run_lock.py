"""RunLock: one run per output folder; live holders refused (naming them), stale locks taken over, release at exit."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from medsyn_monai.utils import RunLock, RunLockedError
from medsyn_monai.utils import run_lock as run_lock_module

#: a process that takes the lock of argv[1], says so, and holds it until its stdin closes; it then exits without
#: calling release() (the atexit safety net releases it). run_lock.py is loaded alone: no torch import, a fast start.
HOLDER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("run_lock", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.RunLock(sys.argv[2], "holder run").acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def _write_lock(folder: Path, pid: int, host: str | None = None, description: str = "old run") -> Path:
    """A lock file as another run would have left it; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"pid": pid, "host": host or socket.gethostname(), "started": "2024-05-01T10:00:00+00:00",
              "description": description}  # fmt: skip
    path = folder / run_lock_module.LOCK_NAME
    path.write_text(json.dumps(record))
    return path


def _record(lock: RunLock) -> dict:
    return json.loads(lock.path.read_text())


def test_acquire_writes_record_and_release_cleans_up(tmp_path):
    folder = tmp_path / "runs" / "a"
    lock = RunLock(folder, "ct_lightweight train.json").acquire()
    assert lock.held and lock.path == folder / ".medsyn_run.lock"
    record = _record(lock)
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert record["description"] == "ct_lightweight train.json" and record["started"].endswith("+00:00")
    before = lock.path.read_bytes()
    assert lock.acquire() is lock and lock.path.read_bytes() == before  # a second acquire changes nothing
    lock.release()
    assert not lock.held and not folder.exists()  # created by acquire and left empty: removed
    assert (tmp_path / "runs").is_dir()  # only the folder itself, not its parents
    lock.release()  # twice: nothing happens

    # a folder the run wrote into, or one that existed before, stays
    with RunLock(folder) as lock:
        (folder / "model.pt").write_bytes(b"w")
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]
    with RunLock(tmp_path / "runs") as lock:
        assert lock.held
    assert (tmp_path / "runs").is_dir() and not lock.path.exists()


def test_live_holder_refused_and_lock_released_at_its_exit(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, run_lock_module.__file__, str(folder)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        lock_file = folder / ".medsyn_run.lock"
        content = lock_file.read_bytes()
        started = json.loads(content)["started"]
        with pytest.raises(RunLockedError) as info:
            RunLock(folder, "second run").acquire()
        msg = str(info.value)
        assert f"another run is writing into {folder}: process {holder.pid} (holder run)" in msg
        assert f"started {started}" in msg and str(lock_file) in msg and "another output_dir" in msg
        assert lock_file.read_bytes() == content  # the holder's lock is left alone
    finally:
        holder.communicate(timeout=30)  # closes its stdin: it exits without calling release()
    assert holder.returncode == 0
    assert not folder.exists()  # released by atexit, and the (empty) folder it created removed
    with RunLock(folder) as lock:
        assert _record(lock)["pid"] == os.getpid()


def test_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # exited and reaped: no process has its pid any more
    path = _write_lock(tmp_path, child.pid)
    with caplog.at_level(logging.WARNING, logger="medsyn_monai.utils.run_lock"):
        lock = RunLock(tmp_path, "new run").acquire()
    assert lock.held and _record(lock)["pid"] == os.getpid() and _record(lock)["description"] == "new run"
    assert f"taking over the lock {path} of process {child.pid} (no longer running)" in caplog.text
    lock.release()
    assert not path.exists() and tmp_path.is_dir()

    path.write_text('{"pid": 12')  # cut short by a kill while being written
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medsyn_monai.utils.run_lock"):
        RunLock(tmp_path).acquire().release()
    assert "of an unreadable lock" in caplog.text and not path.exists()


def test_lock_of_this_process_is_taken_over_silently(tmp_path, caplog):
    """An earlier run in this very process stopped with an error before releasing its lock: the next run takes it."""
    earlier = RunLock(tmp_path, "failed run").acquire()
    with caplog.at_level(logging.WARNING, logger="medsyn_monai.utils.run_lock"):
        rerun = RunLock(tmp_path, "rerun").acquire()
    assert rerun.held and _record(rerun)["description"] == "rerun" and caplog.text == ""
    rerun.release()
    assert not rerun.path.exists()
    earlier.release()  # nothing left to remove: no error


def test_lock_of_another_host_is_refused_with_the_file_to_delete(tmp_path):
    path = _write_lock(tmp_path, os.getpid(), host="gpu-node-7")  # even our own pid: another host's process
    content = path.read_bytes()
    with pytest.raises(RunLockedError) as info:
        RunLock(tmp_path).acquire()
    msg = str(info.value)
    assert f"locked by process {os.getpid()} on host 'gpu-node-7', started 2024-05-01T10:00:00+00:00" in msg
    assert f"If that run has ended, delete {path}" in msg and socket.gethostname() in msg
    assert path.read_bytes() == content


def test_release_leaves_a_lock_that_another_run_took(tmp_path):
    lock = RunLock(tmp_path / "run").acquire()
    other = _write_lock(tmp_path / "run", os.getpid() + 1)  # replaced behind our back (e.g. a takeover)
    content = other.read_bytes()
    lock.release()
    assert not lock.held and other.read_bytes() == content and (tmp_path / "run").is_dir()
