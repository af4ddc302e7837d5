"""Shared set-up of the bundle tests: a bundle's real configs run through ``monai.bundle``, in-process or as the
documented command line, with tiny sizes (seconds per run on one CPU core).

A test module names its bundle (``BUNDLE = "ct_lightweight"``) and gets a :class:`Bundle` from the ``bundle`` fixture.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from monai.bundle import ConfigWorkflow
from monai.bundle import run as bundle_run
from monai.utils import BundleProperty

REPO = Path(__file__).resolve().parents[2]

#: overrides of every tiny training run (float32 on the CPU: for such tiny networks bf16 autocast is slower)
TINY: dict[str, Any] = {"image_size": 16, "channels": [8, 16], "batch_size": 8, "num_inference_steps": 2,
                        "num_grid_samples": 4, "warmup_steps": 2, "cpu_bf16": False}  # fmt: skip


class Bundle:
    """The configs of ``bundles/<name>``: ``train.json`` and ``inference.json`` stand alone, every other config is
    an overlay stacked on ``train.json`` (``config_file=[train.json, overlay]``, as the MONAI model zoo does)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.root = REPO / "bundles" / name
        self.configs = self.root / "configs"
        self.logging = str(self.configs / "logging.conf")

    def config(self, name: str) -> str:
        return str(self.configs / f"{name}.json")

    def config_files(self, name: str) -> str | list[str]:
        """``config_file`` of ``name``: the file itself, or ``[train.json, <name>.json]`` for an overlay."""
        return self.config(name) if name in ("train", "inference") else [self.config("train"), self.config(name)]

    def run(self, name: str, **overrides: Any) -> None:
        """``monai.bundle.run`` of one config (or overlay) with these overrides."""
        bundle_run(config_file=self.config_files(name), logging_file=self.logging, **overrides)

    def train(self, output_dir: Path, dataset_dir: Path, config: str = "train", **overrides: Any) -> None:
        """A tiny training run (2 epochs unless overridden) of ``train.json`` or an overlay on it."""
        kwargs = {**TINY, "dataset_dir": str(dataset_dir), "output_dir": str(output_dir), "max_epochs": 2}
        self.run(config, **{**kwargs, **overrides})

    def infer(self, output_dir: Path, **overrides: Any) -> None:
        """``inference.json``: 2 DDIM steps, samples written to ``output_dir/samples``."""
        self.run("inference", **{"output_dir": str(output_dir), "num_inference_steps": 2, **overrides})

    def command(self, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
        """``python -m monai.bundle run <args>`` in a new process started in ``cwd``."""
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        cmd = [sys.executable, "-m", "monai.bundle", "run", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)

    def workflow(self, dataset_dir: Path, output_dir: Path, **overrides: Any) -> ConfigWorkflow:
        """``train.json`` as an initialised MONAI ``ConfigWorkflow`` with the bundle's metadata (tiny sizes)."""
        tiny = {k: v for k, v in TINY.items() if k != "warmup_steps"}
        workflow = ConfigWorkflow(config_file=self.config("train"), workflow_type="train",
                                  meta_file=str(self.configs / "metadata.json"), logging_file=self.logging,
                                  dataset_dir=str(dataset_dir), output_dir=str(output_dir),
                                  **{**tiny, **overrides})  # fmt: skip
        workflow.initialize()
        return workflow

    @staticmethod
    def missing_required(workflow: ConfigWorkflow) -> list[str]:
        """The required MONAI train properties that ``check_properties`` finds missing."""
        return [n for n in workflow.check_properties() if workflow.properties[n][BundleProperty.REQUIRED]]

    def metadata(self) -> dict[str, Any]:
        """``metadata.json``, checked for the fields of the MONAI model zoo's schema."""
        meta = json.loads((self.configs / "metadata.json").read_text())
        for key in ("version", "changelog", "monai_version", "pytorch_version", "numpy_version",
                    "required_packages_version", "name", "task", "description", "authors", "data_source",
                    "network_data_format", "intended_use", "references"):  # fmt: skip
            assert meta[key], key
        assert meta["version"] in meta["changelog"]
        assert {"inputs", "outputs"} <= set(meta["network_data_format"])
        return meta

    @staticmethod
    def csv_rows(path: Path) -> list[dict[str, str]]:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def bundle(request) -> Bundle:
    """The bundle named by the requesting test module's ``BUNDLE`` (e.g. ``BUNDLE = "cell_ddpm"``)."""
    return Bundle(request.module.BUNDLE)
