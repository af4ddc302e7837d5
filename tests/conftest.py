from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (see the project README); skipping real-data test")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_ct_demo(tmp_path_factory) -> Path:
    """A small synthetic CT demo collection (DICOM series in two class folders)."""
    from medsyn_monai.apps.demo.ct import create_ct_demo

    root = tmp_path_factory.mktemp("ct_demo") / "demo"
    create_ct_demo(root, num_cases=8, num_slices=4, size=64)
    return root
