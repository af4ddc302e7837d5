"""Fixtures of the bundle tests; the shared set-up itself (:class:`Bundle`, tiny sizes, helpers) is in
:mod:`tests.bundles._bundle`, so test modules never import this file.

A test module names its bundle (``BUNDLE = "ct_lightweight"``) and gets a :class:`Bundle` from the ``bundle`` fixture;
one that sets ``DEMO`` (a demo kind and its generator arguments) gets that tiny demo collection from ``tiny_demo``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medsyn_monai.apps.demo import create_demo
from tests.bundles._bundle import Bundle


@pytest.fixture(scope="module")
def bundle(request: pytest.FixtureRequest) -> Bundle:
    """The bundle named by the requesting test module's ``BUNDLE`` (e.g. ``BUNDLE = "cell_ddpm"``)."""
    return Bundle(request.module.BUNDLE)


@pytest.fixture(scope="module")
def tiny_demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic demo collection of the test module's ``DEMO`` (e.g. ``("cxr", {"num_per_class": 12})``), written
    once for the module."""
    kind, params = request.module.DEMO
    return create_demo(kind, tmp_path_factory.mktemp(kind) / "demo", **params)
