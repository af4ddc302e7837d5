"""Small building blocks shared by the tests of several sub-packages (engines, handlers, apps.generation).

Test modules import them (``from tests._helpers import tiny_unet``); fixtures stay in :mod:`tests.conftest`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from medsyn_monai.networks.nets import LightweightDiffusionUNet
from medsyn_monai.utils.distributed import destroy_distributed, init_distributed


def tiny_unet(num_classes: int | None = None) -> LightweightDiffusionUNet:
    """A 2D LightweightDiffusionUNet for 1-channel images with levels of 8 and 16 channels, the same weights each call
    (seeded); class-conditional with ``num_classes`` embeddings when given."""
    torch.manual_seed(0)
    return LightweightDiffusionUNet(channels=(8, 16), norm_num_groups=4, num_class_embeds=num_classes)


def noise_batches(n_batches: int = 4, labelled: bool = False) -> list[dict[str, torch.Tensor]]:
    """``n_batches`` batches of four 8x8 uniform-noise images in [-1, 1] (seeded), with random labels 0/1 when
    ``labelled``."""
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(n_batches):
        b = {"image": torch.rand(4, 1, 8, 8, generator=g) * 2 - 1}
        if labelled:
            b["label"] = torch.randint(0, 2, (4,), generator=g)
        batches.append(b)
    return batches


class _CreatesMarker:
    """Stands for the code a crafted ``.pt`` file runs when unpickled: here, creating the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def save_crafted_pickle(path: Path, marker: Path, key: str = "network") -> Path:
    """``torch.save`` a dict ``{key: obj}`` to ``path`` whose full unpickling would create the file ``marker`` (a
    crafted checkpoint: loading it with ``weights_only=False`` runs code); returns ``path``."""
    torch.save({key: _CreatesMarker(marker)}, path)
    return path


def _process_main(rank: int, world: int, port: int, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    init_distributed("cpu")
    try:
        fn(rank, *args)
    finally:
        destroy_distributed()


def run_processes(fn: Callable[..., None], *args: Any, world: int = 2) -> None:
    """Run ``fn(rank, *args)`` in ``world`` new processes joined in a gloo process group on the CPU (as ``torchrun``
    would start them); ``fn`` must be importable (a module-level function) and report through files. An exception in
    a process fails the caller."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    mp.start_processes(_process_main, args=(world, port, fn, args), nprocs=world, start_method="spawn")
