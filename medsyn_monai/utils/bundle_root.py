"""Where a bundle's folder is, whichever folder a command is run from."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["find_bundle_root"]


def find_bundle_root(name: str) -> str:
    """The folder of the bundle ``name`` (the ``bundle_root`` of its configs), found from the current folder.

    Bundles run from the repository root (``--config_file bundles/<name>/configs/train.json``), from inside their
    own folder (the MONAI model-zoo habit, ``--config_file configs/train.json``) or from anywhere with an explicit
    ``--bundle_root``. This default looks, in order, at the current folder (when it is the bundle: a folder named
    ``name`` holding ``configs/``), at ``bundles/<name>`` below it, and at ``bundles/<name>`` of the source tree the
    package was installed from (an editable install of the repository). Nothing in the configs depends on it but
    what names the bundle's own files; data and outputs are paths of their own (``dataset_dir``, ``output_dir``).

    Args:
        name: the bundle's folder name, e.g. ``"ct_lightweight"``.

    Returns:
        the folder as a string (the current folder when none is found).

    Example:
        >>> import os, tempfile
        >>> root = tempfile.mkdtemp()
        >>> os.makedirs(os.path.join(root, "bundles", "demo", "configs"))
        >>> cwd = os.getcwd(); os.chdir(root)
        >>> find_bundle_root("demo")
        'bundles/demo'
        >>> os.chdir(cwd)
    """
    here = Path.cwd()
    if here.name == name and (here / "configs").is_dir():
        return "."
    for base in (Path("."), Path(__file__).resolve().parents[2]):
        candidate = base / "bundles" / name
        if (candidate / "configs").is_dir():
            return str(candidate) if base == Path(".") else os.path.relpath(candidate)
    return "."
