"""Set-up shared by the tests of :mod:`medsyn_monai.apps.demo`.

A test module of a demo kind sets ``KIND`` (e.g. ``"cxr"``) and ``SMALL`` (the generator arguments of a small demo);
the module-scoped fixture :func:`small_demo` writes that demo once for the module. The helpers are served as fixtures
(:func:`snapshot`, :func:`read_png`, :func:`check_existing_folders`), so test modules never import this file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from medsyn_monai.apps.demo import create_demo


def _snapshot(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file below ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read_png(path: Path, mode: str) -> np.ndarray:
    """The pixels of a PNG file, asserting that it is a PNG of the given mode (``"L"`` or ``"RGB"``)."""
    with Image.open(path) as im:
        assert im.mode == mode and im.format == "PNG"
        return np.asarray(im)


def _check_existing_folders(create: Callable[..., Path], demo: Path, params: dict[str, Any], tmp_path: Path) -> None:
    """Check how the generator ``create`` treats a ``root`` that exists.

    ``demo`` holds the demo ``create(demo, **params)`` writes: it is returned untouched (same bytes, no file rewritten,
    no temporary folder left). The same folder with other parameters, a non-empty folder without ``dataset.json``
    (left as it is) and a file are refused with a ``ValueError`` saying why.
    """
    files = [p for p in sorted(demo.rglob("*")) if p.is_file()]
    before, mtimes = _snapshot(demo), [f.stat().st_mtime_ns for f in files]
    assert create(demo, **params) == demo
    assert _snapshot(demo) == before and [f.stat().st_mtime_ns for f in files] == mtimes
    assert not [p for p in demo.iterdir() if p.name.startswith(".tmp")]

    with pytest.raises(ValueError, match="different collection"):
        create(demo, **{**params, "seed": 9})
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"foreign.*no dataset\.json"):
        create(foreign, **params)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        create(tmp_path / "afile", **params)


@pytest.fixture(scope="module")
def small_demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test module's ``KIND`` demo, written once with its ``SMALL`` arguments."""
    kind, params = request.module.KIND, request.module.SMALL
    return create_demo(kind, tmp_path_factory.mktemp(kind) / "demo", **params)


@pytest.fixture(scope="session")
def snapshot() -> Callable[[Path], dict[str, bytes]]:
    """Relative path -> bytes of every file below a folder."""
    return _snapshot


@pytest.fixture(scope="session")
def read_png() -> Callable[[Path, str], np.ndarray]:
    """Read a PNG file's pixels, asserting its format and mode."""
    return _read_png


@pytest.fixture(scope="session")
def check_existing_folders() -> Callable[[Callable[..., Path], Path, dict[str, Any], Path], None]:
    """Check how a demo generator treats an existing ``root`` (see :func:`_check_existing_folders`)."""
    return _check_existing_folders
