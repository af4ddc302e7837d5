"""``multi_gpu_train.json`` of every bundle, run as documented with ``torchrun --standalone --nproc_per_node=2`` on
the CPU (gloo), tiny sizes: both processes train, only rank 0 writes (one checkpoint, one TensorBoard event file,
one CSV log); for the main job and the feature-aligned bundle a second command resumes the run under DDP and a
one-process run with the same global batch trains as many iterations, with (main job) the same epoch losses within
15 %. That two processes and one process compute
the same weights exactly is tested on the engine (``tests/engines/test_trainer_distributed.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from medsyn_monai.apps.demo import create_demo
from tests.bundles._bundle import REPO, TINY, Bundle

#: bundle -> (demo kind, tiny demo arguments)
DEMOS: dict[str, tuple[str, dict[str, Any]]] = {
    "ct_lightweight": ("ct", {"num_cases": 8, "num_slices": 4, "size": 64}),
    "cxr_cfg": ("cxr", {"num_per_class": 16, "size": 32}),
    "cell_ddpm": ("cells", {"num_per_class": 12, "size": 32}),
    "histo_feature_aligned": ("histo", {"num_per_class": 5, "size": 32}),
    "derm_dreambooth": ("derm", {"num_per_class": 16, "num_instance": 3, "size": 32}),
}
#: further tiny overrides of the bundles on MONAI's DiffusionModelUNet (attention heads of 8 channels)
OPTIONS: dict[str, dict[str, Any]] = {"cxr_cfg": {"num_head_channels": 8, "cross_attention_dim": 8},
                                      "derm_dreambooth": {"num_head_channels": 8}}  # fmt: skip
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
BATCH = 4  # per process: the global batch is 8
#: bundles also resumed under DDP and compared with one process (the main job; feature alignment with its expert)
FULL_CHECK = ("ct_lightweight", "histo_feature_aligned")


def _options(**options: Any) -> list[str]:
    args = []
    for key, value in options.items():
        args += [f"--{key}", json.dumps(value) if isinstance(value, list) else str(value)]
    return args


def _run(bundle: Bundle, out: Path, data: Path, processes: int, **options: Any) -> subprocess.CompletedProcess:
    """The documented command: ``torchrun ... -m monai.bundle run`` with train.json + multi_gpu_train.json (or
    ``python -m monai.bundle run`` with train.json alone for ``processes=1``)."""
    tiny = {**TINY, "batch_size": BATCH * (2 if processes == 1 else 1), "sample_interval": 1, "device": "cpu"}
    args = ["run", "--config_file"]
    if processes > 1:
        args.append(json.dumps([bundle.config("train"), bundle.config("multi_gpu_train")]))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m",
               "monai.bundle"]  # fmt: skip
    else:
        args.append(bundle.config("train"))
        cmd = [sys.executable, "-m", "monai.bundle"]
    args += _options(**{**tiny, "dataset_dir": data, "output_dir": out, **options})
    return subprocess.run(cmd + args, capture_output=True, text=True, env=ENV, cwd=REPO, timeout=600)


def _check(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def _mean_losses(out: Path) -> list[float]:
    return [float(r["mean_loss"]) for r in Bundle.csv_rows(out / "train_log.csv")]


@pytest.mark.parametrize("name", sorted(DEMOS))
def test_torchrun_two_processes(name, tmp_path):
    bundle = Bundle(name)
    kind, params = DEMOS[name]
    data = create_demo(kind, tmp_path / "demo", **params)
    extra: dict[str, Any] = dict(OPTIONS.get(name, {}))
    if name == "histo_feature_aligned":  # feature alignment needs the frozen expert (on every process)
        expert = tmp_path / "expert"
        bundle.run("train_expert", dataset_dir=str(data), output_dir=str(expert), max_epochs=1, image_size=16,
                   batch_size=8, device="cpu", expert_network="resnet18")  # fmt: skip
        extra["expert_ckpt"] = str(expert / "models" / "expert" / "best_model.pt")
    ddp, single = tmp_path / "ddp", tmp_path / "single"

    first = _check(_run(bundle, ddp, data, 2, max_epochs=1, **extra))
    for rank in (0, 1):
        assert f"rank {rank} of 2: DistributedDataParallel on cpu" in first
    assert "global batch 8" in first
    # rank 0 alone wrote: one event file, one checkpoint set, one log row per epoch, one grid per epoch
    assert len(list((ddp / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (ddp / "models").iterdir() if p.is_file()) == [
        "checkpoint.pt", "model.pt", "model_info.json"]  # fmt: skip
    Bundle.check_training_outputs(ddp, epochs=1)
    assert [p.name for p in (ddp / "samples" / "training").iterdir()] == ["epoch_0001.png"]
    assert not (ddp / ".medsyn_run.lock").exists()

    if name not in FULL_CHECK:
        return
    # a second command resumes under DDP and trains epoch 2
    second = _check(_run(bundle, ddp, data, 2, max_epochs=2, **extra))
    assert second.count("resumed from") == 2 and "at epoch 1 (max_epochs 2)" in second  # both processes
    Bundle.check_training_outputs(ddp, epochs=2)
    assert len(list((ddp / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one per command, rank 0's

    # one process with the same global batch: the same iterations, and a loss that follows it
    _check(_run(bundle, single, data, 1, max_epochs=2, **extra))
    ddp_rows, single_rows = Bundle.csv_rows(ddp / "train_log.csv"), Bundle.csv_rows(single / "train_log.csv")
    assert [r["iteration"] for r in ddp_rows] == [r["iteration"] for r in single_rows]
    if name == "ct_lightweight":  # 20 iterations an epoch: epoch means steady enough to compare (others: 2-4)
        for a, b in zip(_mean_losses(ddp), _mean_losses(single), strict=True):
            assert abs(a - b) <= 0.15 * b, (_mean_losses(ddp), _mean_losses(single))
