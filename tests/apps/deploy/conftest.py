"""A tiny trained ct_lightweight model, shared by the deploy tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bundles._bundle import Bundle


@pytest.fixture(scope="session")
def tiny_ct_models(tiny_ct_demo, tmp_path_factory) -> Path:
    """``models/`` of a one-epoch ct_lightweight run on the tiny CT demo (classes lesion, normal)."""
    out = tmp_path_factory.mktemp("deploy_ct_run")
    Bundle("ct_lightweight").train(out, tiny_ct_demo, max_epochs=1, sample_interval=0, device="cpu")
    return out / "models"
