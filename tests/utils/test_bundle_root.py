"""find_bundle_root: the bundle folder from inside it, from a folder holding bundles/, from the source tree, or '.'."""

from __future__ import annotations

from pathlib import Path

import pytest

import medsyn_monai
from medsyn_monai.utils import find_bundle_root

# the source tree of an editable install (where find_bundle_root looks last)
SOURCE_BUNDLES = Path(medsyn_monai.__file__).resolve().parents[1] / "bundles"


def _bundle(root: Path, name: str) -> Path:
    (root / name / "configs").mkdir(parents=True)
    return root / name


def test_inside_the_bundle_below_it_or_nowhere(tmp_path, monkeypatch):
    bundle = _bundle(tmp_path / "bundles", "my_bundle")
    monkeypatch.chdir(bundle)
    assert find_bundle_root("my_bundle") == "."
    monkeypatch.chdir(tmp_path)
    assert find_bundle_root("my_bundle") == str(Path("bundles") / "my_bundle")
    monkeypatch.chdir(bundle / "configs")  # not found from here (and not in the source tree): the current folder
    assert find_bundle_root("my_bundle") == "."


def test_a_folder_named_like_the_bundle_needs_configs(tmp_path, monkeypatch):
    outer = tmp_path / "my_bundle"  # named like the bundle, but without configs/: not the bundle
    _bundle(outer / "bundles", "my_bundle")
    monkeypatch.chdir(outer)
    assert find_bundle_root("my_bundle") == str(Path("bundles") / "my_bundle")


@pytest.mark.skipif(not SOURCE_BUNDLES.is_dir(), reason="medsyn_monai is not an editable install of the repository")
def test_source_tree_of_an_editable_install(tmp_path, monkeypatch):
    name = next(p.name for p in sorted(SOURCE_BUNDLES.iterdir()) if (p / "configs").is_dir())
    monkeypatch.chdir(tmp_path)
    found = find_bundle_root(name)
    assert not Path(found).is_absolute() and (tmp_path / found).resolve() == SOURCE_BUNDLES / name
    # a local bundles/<name> without configs/ is passed over; with configs/ it comes before the source tree
    (tmp_path / "bundles" / name).mkdir(parents=True)
    assert find_bundle_root(name) == found
    (tmp_path / "bundles" / name / "configs").mkdir()
    assert find_bundle_root(name) == str(Path("bundles") / name)
