"""One training run per output folder: a lock file naming the process that holds it."""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medsyn_monai.utils.distributed import is_main_process

__all__ = ["RunLock", "RunLockedError"]

LOCK_NAME = ".medsyn_run.lock"


class RunLockedError(RuntimeError):
    """Another live process holds the run folder's lock."""


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class RunLock:
    """An exclusive lock on a run folder, so that two runs never write into one ``output_dir``.

    :meth:`acquire` creates ``<folder>/.medsyn_run.lock`` atomically (``O_CREAT | O_EXCL``) holding the process id,
    the host name, the start time (UTC) and ``description``. When the file exists already:

    - held by a live process (same host): :class:`RunLockedError`, naming that process and when it started;
    - held by a process that no longer exists (a run that was killed): taken over, with a warning;
    - held by this very process (an earlier run in it stopped with an error before releasing it): taken over;
    - held by a process of another host (a shared file system): :class:`RunLockedError`, since its liveness cannot be
      checked here; the message says which file to delete once that run is known to have ended.

    The lock is released by :meth:`release` and, as a safety net, at interpreter exit (not after ``SIGKILL``: that
    leaves a stale lock, taken over by the next run). A folder that :meth:`acquire` created is removed again on
    release when the run left nothing in it.

    Args:
        folder: the run folder (``output_dir``).
        description: what holds the lock, for the message another run shows (e.g. ``"ct_lightweight train.json"``).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()) / "run"
        >>> lock = RunLock(d, "demo").acquire()
        >>> record = json.loads(lock.path.read_text())
        >>> record["pid"] == os.getpid(), record["description"]
        (True, 'demo')
        >>> lock.release(); d.exists()
        False
    """

    def __init__(self, folder: str | os.PathLike, description: str = "") -> None:
        self.folder = Path(folder)
        self.description = str(description)
        self.path = self.folder / LOCK_NAME
        self.held = False
        self._created_folder = False
        self.logger = logging.getLogger(__name__)

    def _record(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "description": self.description,
        }

    def _holder(self) -> dict[str, Any] | None:
        """The lock file's record, or ``None`` when it is unreadable (a lock cut short by a kill)."""
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None

    def acquire(self) -> RunLock:
        """Take the lock (see the class docstring); returns ``self``. In multi-process training (``torchrun``) the
        main process takes it for all (the others share its run folder and do nothing here).

        Raises:
            RunLockedError: another live run holds it, or a run on another host.
        """
        if self.held or not is_main_process():
            return self
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            self._created_folder = True
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._record(), f)
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            atexit.register(self.release)
            return self
        raise RunLockedError(f"could not take the lock {self.path}: another run took it at the same moment.")

    def _take_over_if_stale(self) -> None:
        holder = self._holder()
        here = socket.gethostname()
        if holder is not None and holder.get("host") == here and holder.get("pid") == os.getpid():
            # an earlier run of this very process that stopped with an error before releasing it (a bundle's
            # "finalize" does not run after an exception): nothing else is writing, take it
            self.path.unlink(missing_ok=True)
            return
        if holder is not None and holder.get("host") == here and _alive(int(holder["pid"])):
            what = f" ({holder['description']})" if holder.get("description") else ""
            raise RunLockedError(
                f"another run is writing into {self.folder}: process {holder['pid']}{what} on {here}, started "
                f"{holder.get('started', '?')} (lock file {self.path}). Wait for it to finish, stop it, or use "
                "another output_dir."
            )
        if holder is not None and holder.get("host") != here:
            raise RunLockedError(
                f"{self.folder} is locked by process {holder['pid']} on host {holder.get('host')!r}, started "
                f"{holder.get('started', '?')}; its state cannot be checked from {here}. If that run has ended, "
                f"delete {self.path}; otherwise use another output_dir."
            )
        who = "an unreadable lock" if holder is None else f"process {holder['pid']} (no longer running)"
        self.logger.warning(f"taking over the lock {self.path} of {who}: that run was interrupted.")
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock file if this process holds it (and the folder if :meth:`acquire` created it and it is
        empty now)."""
        if not self.held:
            return
        self.held = False
        holder = self._holder()
        if holder is None or holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        atexit.unregister(self.release)
        if self._created_folder:
            try:
                self.folder.rmdir()  # only when empty
            except OSError:
                pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
