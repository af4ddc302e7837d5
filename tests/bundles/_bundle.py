"""Shared set-up of the bundle tests: a bundle's real configs run through ``monai.bundle``, in-process or as the
documented command line, with tiny sizes (seconds per run on one CPU core).

A test module names its bundle (``BUNDLE = "ct_lightweight"``) and gets a :class:`Bundle` from the ``bundle`` fixture
of ``tests/bundles/conftest.py``; test modules import what else they need from here (``from tests.bundles._bundle
import REPO, log_messages``), never the conftest.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
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

    def parser(self, name: str) -> ConfigParser:
        """A ``ConfigParser`` holding the config (or the overlay stacked on train.json) ``name``."""
        parser = ConfigParser()
        parser.read_config(self.config_files(name))
        return parser

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

    def config_workflow(self, name: str, **kwargs: Any) -> ConfigWorkflow:
        """A config (or overlay) as an initialised MONAI train ``ConfigWorkflow`` with these arguments / overrides."""
        workflow = ConfigWorkflow(config_file=self.config_files(name), workflow_type="train", logging_file=self.logging,
                                  **kwargs)  # fmt: skip
        workflow.initialize()
        return workflow

    def workflow(self, dataset_dir: Path, output_dir: Path, **overrides: Any) -> ConfigWorkflow:
        """``train.json`` as an initialised MONAI ``ConfigWorkflow`` with the bundle's metadata (tiny sizes)."""
        tiny = {k: v for k, v in TINY.items() if k != "warmup_steps"}
        return self.config_workflow("train", meta_file=str(self.configs / "metadata.json"),
                                    dataset_dir=str(dataset_dir), output_dir=str(output_dir),
                                    **{**tiny, **overrides})  # fmt: skip

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

    @classmethod
    def check_training_outputs(cls, out: Path, epochs: int) -> dict[str, Any]:
        """Check what every training run of ``epochs`` epochs leaves in ``out``: the model files, a full checkpoint,
        TensorBoard events and one finite ``mean_loss`` an epoch in ``train_log.csv``; returns the checkpoint."""
        models = out / "models"
        assert {"checkpoint.pt", "model.pt", "model_info.json"} <= {p.name for p in models.iterdir()}
        ckpt = torch.load(models / "checkpoint.pt", weights_only=True)
        assert {"network", "ema", "optimizer", "lr_scheduler", "trainer"} <= set(ckpt)
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))
        rows = cls.csv_rows(out / "train_log.csv")
        assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
        assert all(np.isfinite(float(r["mean_loss"])) for r in rows)
        return ckpt

    @staticmethod
    def model_info(run: Path, *sub: str) -> dict[str, Any]:
        """``run/models[/sub...]/model_info.json``."""
        return json.loads((run / "models" / Path(*sub) / "model_info.json").read_text())


def copy_models(src: Path, run: Path, *names: str, expert: bool = False) -> Path:
    """A run folder holding copies of the files ``names`` of ``src/models`` (and of its expert), so that tests do not
    share fine-tuning outputs."""
    (run / "models").mkdir(parents=True)
    for name in names:
        shutil.copy(src / "models" / name, run / "models" / name)
    if expert:
        shutil.copytree(src / "models" / "expert", run / "models" / "expert")
    return run


@contextmanager
def log_messages(caplog: pytest.LogCaptureFixture, name: str) -> Iterator[list[str]]:
    """The messages of logger ``name`` (its own handler: the bundle's logging.conf replaces the root handlers)."""
    logger = logging.getLogger(name)
    caplog.set_level(logging.INFO, logger=name)
    messages: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
