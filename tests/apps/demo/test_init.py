"""Tests of :mod:`medsyn_monai.apps.demo`: the registry of demo kinds, :func:`create_demo` and :func:`prepare_demo`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medsyn_monai.apps.demo import (
    DEMO_FACTORIES,
    create_cells_demo,
    create_ct_demo,
    create_cxr_demo,
    create_demo,
    create_derm_demo,
    create_histo_demo,
    prepare_demo,
)
from medsyn_monai.utils.enums import DemoKind

TINY_CELLS = {"num_per_class": 1, "size": 32}


def test_every_kind_has_its_generator():
    assert set(DEMO_FACTORIES) == set(DemoKind)
    assert DEMO_FACTORIES == {
        "ct": create_ct_demo,
        "cells": create_cells_demo,
        "cxr": create_cxr_demo,
        "histo": create_histo_demo,
        "derm": create_derm_demo,
    }


def test_create_demo_dispatches_by_kind(tmp_path: Path):
    root = create_demo("CXR", tmp_path / "cxr", num_per_class=1, size=28)  # the kind is case-insensitive
    assert root == tmp_path / "cxr"
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["classes"] == ["normal", "pneumonia"] and len(list(root.rglob("*.png"))) == 2
    assert create_demo(DemoKind.CXR, root, num_per_class=1, size=28) == root  # the same demo: kept as it is


def test_create_demo_errors(tmp_path: Path):
    with pytest.raises(ValueError, match=r"unknown demo kind 'mri'; known kinds: \['ct', 'cells', 'cxr'"):
        create_demo("mri", tmp_path / "mri")
    assert not (tmp_path / "mri").exists()
    with pytest.raises(ValueError, match="num_per_class must be an integer >= 1"):
        create_demo("cells", tmp_path / "bad", num_per_class=0)
    assert not (tmp_path / "bad").exists()


def test_prepare_demo_writes_only_into_an_absent_or_empty_demo_folder(tmp_path: Path):
    demo = tmp_path / "cells_demo"
    # a data folder outside the demo: returned unchanged, nothing written
    assert prepare_demo("cells", tmp_path / "real", demo, **TINY_CELLS) == str(tmp_path / "real")
    assert not demo.exists()
    # the demo folder itself, absent: the demo is written there
    assert prepare_demo("cells", demo, demo, **TINY_CELLS) == str(demo)
    assert sorted(p.name for p in demo.iterdir()) == ["README.md", "dataset.json", "parasitized", "uninfected"]
    # a folder inside a demo that exists: used as it is (the arguments are not checked against it)
    before = (demo / "dataset.json").stat().st_mtime_ns
    assert prepare_demo("cells", demo / "parasitized", demo, num_per_class=5) == str(demo / "parasitized")
    assert (demo / "dataset.json").stat().st_mtime_ns == before


def test_prepare_demo_never_writes_into_a_user_folder(tmp_path: Path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "mine.png").write_bytes(b"")
    assert prepare_demo("cells", user, user, **TINY_CELLS) == str(user)
    assert sorted(p.name for p in user.iterdir()) == ["mine.png"]


def test_prepare_demo_writes_into_a_folder_of_hidden_files_only(tmp_path):
    demo = tmp_path / "cells_demo"
    demo.mkdir()
    (demo / ".DS_Store").write_bytes(b"\0")
    prepare_demo("cells", demo, demo, num_per_class=2, size=32)
    assert (demo / "dataset.json").is_file() and (demo / ".DS_Store").is_file()
