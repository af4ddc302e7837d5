"""Multi-process (``torchrun``) training helpers: process-group set-up, ranks, and "main process only" writing.

Every function works in a plain single process too (rank 0 of a world of 1), so code that calls them runs unchanged
with and without ``torchrun``.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.distributed as dist

__all__ = [
    "all_reduce_max",
    "all_reduce_sum",
    "barrier",
    "destroy_distributed",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "local_device",
    "main_process_first",
]

#: the environment variables ``torchrun`` sets for every process it starts
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

logger = logging.getLogger(__name__)


def is_distributed() -> bool:
    """``True`` inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's global rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes of the process group (1 outside one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """``True`` on rank 0 (and in a single process): the one process that writes files.

    Example:
        >>> is_main_process()
        True
    """
    return get_rank() == 0


def local_device(default: str | torch.device = "cpu") -> torch.device:
    """The device of this process: ``cuda:<LOCAL_RANK>`` when ``default`` is a CUDA device and ``torchrun`` set
    ``LOCAL_RANK``, else ``default`` itself.

    Example:
        >>> str(local_device("cpu"))
        'cpu'
    """
    device = torch.device(default)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def init_distributed(
    device: str | torch.device = "cpu", backend: str | None = None, timeout_minutes: float = 30.0
) -> bool:
    """Join the process group that ``torchrun`` describes in the environment (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``): ``nccl`` for a CUDA ``device`` (which becomes the current CUDA device),
    ``gloo`` otherwise. Does nothing when the group is already initialised.

    Args:
        device: this process's device (:func:`local_device`).
        backend: ``"nccl"``, ``"gloo"``, ... (``None``: chosen from ``device``).
        timeout_minutes: how long a collective waits for the other processes before failing.

    Returns:
        ``True`` when the process group is initialised (now or before).

    Raises:
        RuntimeError: the environment does not describe a process group (not started by ``torchrun``), or
            ``torch.distributed`` is not available in this PyTorch build.
    """
    if not dist.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed: multi-process training is not possible.")
    if dist.is_initialized():
        return True
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"multi-process training needs the environment that torchrun sets ({', '.join(missing)} missing): start "
            "it with torchrun, e.g. `torchrun --standalone --nproc_per_node=2 -m monai.bundle run --config_file "
            "\"['configs/train.json','configs/multi_gpu_train.json']\"`, or train in one process with "
            "configs/train.json alone."
        )
    device = torch.device(device)
    if backend is None:
        backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=float(timeout_minutes)))
    logger.info(f"process group: rank {dist.get_rank()} of {dist.get_world_size()} ({backend}, {device})")
    return True


def destroy_distributed(timeout_seconds: float = 60.0) -> None:
    """Leave the process group (if any), after a last barrier so that no process exits while others still write.

    After the group is destroyed the processes meet once more on the group's key-value store (the one ``torchrun``
    hosts): a process that leaves first closes its gloo connections, and a peer still shutting its group down could
    otherwise be aborted ("terminate called without an active exception").

    Args:
        timeout_seconds: how long a process waits at that last meeting before it leaves anyway (with a warning).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    if world == 1:
        dist.destroy_process_group()
        return
    store = dist.distributed_c10d._get_default_store()
    dist.barrier()
    dist.destroy_process_group()
    deadline = time.monotonic() + timeout_seconds
    try:  # a counter over every destroy on this store: this one is complete at the next multiple of world
        arrived = store.add("medsyn_monai/destroyed", 1)
        target = world * -(-arrived // world)
        while store.add("medsyn_monai/destroyed", 0) < target:
            if time.monotonic() > deadline:
                logger.warning(f"destroy_distributed: not every process left its group within {timeout_seconds} s")
                return
            time.sleep(0.01)
    except (RuntimeError, OSError):  # the store's host (rank 0 outside torchrun) left: everyone had arrived
        return


def barrier() -> None:
    """Wait for every process of the group (nothing in a single process)."""
    if is_distributed():
        dist.barrier()


@contextmanager
def main_process_first() -> Iterator[None]:
    """The main process runs the block first (e.g. writes a data set), the others after it finished (and read).

    Example:
        >>> with main_process_first():
        ...     pass
    """
    main = is_main_process()
    if not main:
        barrier()
    try:
        yield
    finally:
        if main:
            barrier()


def _all_reduce(values: Sequence[float], op: dist.ReduceOp.RedOpType) -> list[float]:
    if not is_distributed():
        return [float(v) for v in values]
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=op)
    return [float(v) for v in tensor.cpu()]


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum of ``values`` over every process (``values`` itself in a single process).

    Example:
        >>> all_reduce_sum([1, 2.5])
        [1.0, 2.5]
    """
    return _all_reduce(values, dist.ReduceOp.SUM)


def all_reduce_max(values: Sequence[float]) -> list[float]:
    """Element-wise maximum of ``values`` over every process (``values`` itself in a single process)."""
    return _all_reduce(values, dist.ReduceOp.MAX)
