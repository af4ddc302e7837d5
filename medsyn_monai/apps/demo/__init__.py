"""Deterministic synthetic demo collections (digital phantoms, no patient data) so that every bundle runs on a fresh
machine: CT DICOM series, chest X-ray, histology, dermoscopy and blood-cell images.

One module per kind (``ct``, ``cxr``, ``cells``, ``histo``, ``derm``), each importing only the helpers they share
(:mod:`medsyn_monai.apps.demo.utils`); :func:`create_demo` dispatches by kind, and :func:`prepare_demo` is what bundle
configs call on their ``dataset_dir``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medsyn_monai.utils.distributed import is_main_process, main_process_first
from medsyn_monai.utils.enums import DemoKind

from .cells import create_cells_demo
from .ct import create_ct_demo
from .cxr import create_cxr_demo
from .derm import create_derm_demo
from .histo import create_histo_demo

__all__ = [
    "create_cells_demo",
    "create_ct_demo",
    "create_cxr_demo",
    "create_demo",
    "create_derm_demo",
    "create_histo_demo",
    "prepare_demo",
]

#: the generator of each demo kind
DEMO_FACTORIES: dict[str, Callable[..., Path]] = {
    DemoKind.CT: create_ct_demo,
    DemoKind.CELLS: create_cells_demo,
    DemoKind.CXR: create_cxr_demo,
    DemoKind.HISTO: create_histo_demo,
    DemoKind.DERM: create_derm_demo,
}

logger = logging.getLogger(__name__)


def create_demo(kind: str, root: str | Path, **kwargs: Any) -> Path:
    """Write a synthetic demo collection of the given kind into ``root`` (nothing is written when it is there).

    Args:
        kind: which demo (:class:`~medsyn_monai.utils.enums.DemoKind`): ``"ct"``, ``"cells"``, ``"cxr"``,
            ``"histo"`` or ``"derm"``.
        root: destination folder.
        kwargs: passed to the kind's generator (e.g. :func:`create_ct_demo`).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: on an unknown ``kind`` (the message lists the known kinds) or invalid generator arguments.

    Example:
        >>> create_demo("mri", "/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown demo kind 'mri'; known kinds: ['ct', 'cells', ...].
    """
    known = [str(k) for k in DEMO_FACTORIES]
    key = str(kind).lower()
    if key not in known:
        raise ValueError(f"unknown demo kind {kind!r}; known kinds: {known}.")
    return DEMO_FACTORIES[key](root, **kwargs)


def prepare_demo(kind: str, path: str | os.PathLike, demo_dir: str | os.PathLike, **kwargs: Any) -> str:
    """Return ``path``, first writing the ``kind`` demo into ``demo_dir`` when ``path`` is that folder or inside it.

    Bundle configs call it on their ``dataset_dir`` (and few-shot ``instance_dir``): their defaults point into the
    demo (e.g. ``data/ct_demo``), so a fresh machine gets the synthetic demo written once, with a log message, when
    ``demo_dir`` is absent or empty. An existing ``demo_dir`` is used as it is; a ``path`` elsewhere (the user's
    data) is returned unchanged and nothing is written.

    Args:
        kind: the demo kind (see :func:`create_demo`).
        path: a data folder (a bundle's ``dataset_dir``).
        demo_dir: the demo's root folder.
        kwargs: arguments of the kind's generator.

    Returns:
        ``path`` as a string.

    Example:
        >>> prepare_demo("derm", "/data/isic/lesions", "data/derm_demo")  # not inside the demo: nothing written
        '/data/isic/lesions'
    """
    target, demo = Path(os.path.abspath(path)), Path(os.path.abspath(demo_dir))
    if target == demo or demo in target.parents:
        with main_process_first():  # multi-process training: rank 0 writes the demo, the others then read it
            empty = not demo.is_dir() or not any(not p.name.startswith(".") for p in demo.iterdir())
            if empty and is_main_process():
                logger.warning(
                    "writing the synthetic %r demo data to '%s' (digital phantoms, no patient data)", kind, demo_dir
                )
                create_demo(kind, demo, **kwargs)
    return str(path)
