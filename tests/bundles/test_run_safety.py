"""Safe training runs, proved with the real ct_lightweight commands (``python -m monai.bundle run ...``) in
subprocesses, with tiny sizes: weights-only loading (a crafted pickle never runs), NaN/inf images and losses, checks
before anything is written, one run per output_dir, honest resumes, clean kills (SIGKILL during training and during
a save), and clear errors for the expert configs.

Independent commands of a test run side by side (:func:`_run_all`); trained runs are copies of one module fixture.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from medsyn_monai.data import ImageCollection
from medsyn_monai.utils.io import file_sha256
from medsyn_monai.utils.run_lock import LOCK_NAME
from tests.bundles._bundle import REPO

BUNDLE = "ct_lightweight"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
#: command-line overrides of every tiny run
TINY_ARGS: dict[str, Any] = {"image_size": 16, "channels": "[8,16]", "batch_size": 8, "num_grid_samples": 2,
                             "num_inference_steps": 2, "cpu_bf16": "false", "warmup_steps": 2}  # fmt: skip
#: val/test split of train.json (case-level, seeded), to put a bad file where only the val/test check finds it
SPLIT = {"val_fraction": 0.1, "test_fraction": 0.1, "seed": 0}
EPOCH_LINE = re.compile(r"medsyn_monai\.train - INFO - epoch \d+/")
#: ``python <this> <marker> run <args>``: monai.bundle with a ``torch.save`` that, for the training checkpoint, writes
#: the temporary file, then creates ``marker`` (holding that file's path) and sleeps, for the test to SIGKILL it there
HANG_IN_SAVE = """\
import runpy, sys, time
from pathlib import Path

import torch

marker, real_save = Path(sys.argv[1]), torch.save


def save(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)
    if Path(str(f)).name.startswith(".checkpoint.pt."):
        marker.write_text(str(f))
        time.sleep(600)


torch.save = save
sys.argv = ["monai.bundle", *sys.argv[2:]]
runpy.run_module("monai.bundle", run_name="__main__", alter_sys=True)
"""


# ---------------------------------------------------------------------------------------------------- helpers


@dataclass
class Result:
    returncode: int
    output: str  # stdout and stderr together
    seconds: float


def _argv(bundle, config: str = "train", **options: Any) -> list[str]:
    """``run --config_file ... --key value ...`` of a config (an overlay is stacked on train.json)."""
    files = bundle.config_files(config)
    config_file = files if isinstance(files, str) else json.dumps(files)
    args = ["run", "--config_file", config_file]
    for key, value in options.items():
        args += [f"--{key}", str(value)]
    return args


def _train(bundle, data: Path, out: Path, config: str = "train", **options: Any) -> list[str]:
    """A tiny training run (2 epochs unless overridden) of ``train.json`` or an overlay on it."""
    return _argv(bundle, config, **{**TINY_ARGS, "dataset_dir": data, "output_dir": out, "max_epochs": 2, **options})


def _start(args: Sequence[str], log: Path, script: Sequence[str] = ("-m", "monai.bundle")) -> subprocess.Popen:
    """``python <script> <args>`` in a new process (in the repository root), its output going to ``log``."""
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, *script, *args], stdout=f, stderr=subprocess.STDOUT, env=ENV,
                                cwd=REPO)  # fmt: skip
    proc.log = log  # type: ignore[attr-defined]
    proc.t0 = time.monotonic()  # type: ignore[attr-defined]
    return proc


def _finish(proc: subprocess.Popen, timeout: float = 300) -> Result:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Result(proc.returncode, proc.log.read_text(), time.monotonic() - proc.t0)  # type: ignore[attr-defined]


def _run_all(*jobs: tuple[Sequence[str], Path]) -> list[Result]:
    """Run independent commands ``(args, log)`` side by side; their results in order."""
    procs = [_start(args, log) for args, log in jobs]
    return [_finish(p) for p in procs]


def _run(args: Sequence[str], log: Path) -> Result:
    return _run_all((args, log))[0]


def _hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative path."""
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _epochs(run: Path) -> list[int]:
    with open(run / "train_log.csv") as f:
        return [int(line.split(",")[0]) for line in f.read().splitlines()[1:]]


def _checkpoint(run: Path) -> dict[str, Any]:
    return torch.load(run / "models" / "checkpoint.pt", map_location="cpu", weights_only=True)


def _checkpoint_epoch(run: Path) -> int:
    """The epochs the checkpoint holds (an ignite state_dict has the iteration and the epoch length)."""
    trainer = _checkpoint(run)["trainer"]
    return int(trainer["iteration"]) // int(trainer["epoch_length"])


def _lock_pid(run: Path) -> int | None:
    try:
        return int(json.loads((run / LOCK_NAME).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float = 180) -> None:
    """Poll ``condition`` until true; fail when ``proc`` ends first or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            tail = proc.log.read_text()[-3000:]  # type: ignore[attr-defined]
            pytest.fail(f"the run ended (exit code {proc.returncode}) before {what}:\n{tail}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _epoch_lines(proc: subprocess.Popen) -> int:
    return len(EPOCH_LINE.findall(proc.log.read_text()))  # type: ignore[attr-defined]


def _assert_no_input_path(run: Path, data: Path) -> None:
    """No JSON/CSV output of ``run`` (nor the checkpoint's settings) holds the absolute path of ``data``."""
    paths = {str(data), str(data.resolve())}
    outputs = [p for p in run.rglob("*") if p.suffix in (".json", ".csv")]
    assert outputs
    for path in outputs:
        text = path.read_text()
        assert not [p for p in paths if p in text], f"{path} holds the input path {data}"
    if (run / "models" / "checkpoint.pt").is_file():
        settings = json.dumps(_checkpoint(run)["settings"])
        assert not [p for p in paths if p in settings]


class _Payload:
    """Pickles as ``exec(code)``: a checkpoint holding it runs that code when unpickled without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.code = f"open({str(marker)!r}, 'w').close()"

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (self.code,))


def _crafted(path: Path, marker: Path, state: dict[str, Any] | None = None) -> Path:
    """A ``.pt`` file like a real one (``state``) plus an entry whose unpickling creates ``marker``."""
    torch.save({**(state or {}), "payload": _Payload(marker)}, path)
    return path


def _nifti_collection(root: Path, class_names: Sequence[str] = ("lesion", "normal"), per_class: int = 5) -> Path:
    """CT volumes in HU (32 x 32 x 4 NIfTI) in class folders, or directly in ``root`` without class names."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for c, name in enumerate(class_names or [""]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            body = ((xx - 16) ** 2 / 12**2 + (yy - 16) ** 2 / (9 + 2 * c) ** 2) < 1
            vol = np.where(body, 40.0, -1000.0)[..., None] + rng.normal(0, 10, (32, 32, 4))
            nib.save(nib.Nifti1Image(vol.astype(np.float32), np.eye(4)), root / name / f"case_{i}.nii.gz")
    return root


# ---------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def trained(bundle, tiny_ct_demo, tmp_path_factory) -> Path:
    """2 epochs of train.json on the tiny CT demo (an absolute dataset_dir) by the command line; tests copy it."""
    root = tmp_path_factory.mktemp("safety_trained")
    res = _run(_train(bundle, tiny_ct_demo, root / "run", sample_interval=1), root / "train.log")
    assert res.returncode == 0, res.output[-3000:]
    assert _epochs(root / "run") == [1, 2] and not (root / "run" / LOCK_NAME).exists()
    return root / "run"


@pytest.fixture(scope="module")
def nan_data(tmp_path_factory) -> tuple[Path, Path]:
    """NIfTI class folders of which one volume of the *test* split holds NaN and inf voxels: (root, that file)."""
    root = _nifti_collection(tmp_path_factory.mktemp("nan_nifti") / "data")
    victim = Path(ImageCollection(root, **SPLIT).data("test")[0]["image"])
    vol = np.asarray(nib.load(victim).dataobj, dtype=np.float32).copy()
    vol[:3, :3, 1] = np.nan  # 9 NaN
    vol[5, 5, 2] = np.inf
    nib.save(nib.Nifti1Image(vol, np.eye(4)), victim)
    assert str(victim) in [r["image"] for r in ImageCollection(root, **SPLIT).data("test")]  # still a test file
    return root, victim


# ---------------------------------------------------------------------------------------------------- 1. pickles


def test_crafted_pickles_are_refused(bundle, trained, tiny_ct_demo, tmp_path):
    """A checkpoint.pt / model.pt / expert file whose unpickling runs code is refused, naming the file, via resume,
    inference.json --ckpt_path and evaluate.json --expert_ckpt; the code never runs and the run's files stay."""
    marker = tmp_path / "code_ran"
    control = _crafted(tmp_path / "control.pt", tmp_path / "control_ran")
    torch.load(control, weights_only=False)  # the files are real exploits: unpickled naively, they run code
    assert (tmp_path / "control_ran").exists()

    resumed = _copy(trained, tmp_path / "resumed")
    ckpt = _crafted(resumed / "models" / "checkpoint.pt", marker, _checkpoint(trained))
    before = _hashes(resumed)

    weights = tmp_path / "downloaded" / "model.pt"
    weights.parent.mkdir()
    shutil.copy(trained / "models" / "model_info.json", weights.parent)
    _crafted(weights, marker, torch.load(trained / "models" / "model.pt", weights_only=True))

    evaluated = _copy(trained, tmp_path / "evaluated")
    expert = tmp_path / "expert" / "best_model.pt"
    expert.parent.mkdir()
    network = {"_target_": "medsyn_monai.networks.nets.ExpertClassifier", "name": "resnet18", "in_channels": 1,
               "num_classes": 2, "image_size": 16}  # fmt: skip
    (expert.parent / "model_info.json").write_text(json.dumps({"kind": "expert", "network": network}))
    _crafted(expert, marker)

    resume = _train(bundle, tiny_ct_demo, resumed, max_epochs=3)
    infer = _argv(bundle, "inference", output_dir=tmp_path / "inf", ckpt_path=weights, num_samples=2,
                  num_inference_steps=2)  # fmt: skip
    evaluate = _argv(bundle, "evaluate", dataset_dir=tiny_ct_demo, output_dir=evaluated, expert_ckpt=expert,
                     num_samples=4, num_seeds=1, samples_per_class=1, num_inference_steps=2)  # fmt: skip
    res_train, res_infer, res_eval = _run_all(
        (resume, tmp_path / "resume.log"), (infer, tmp_path / "inference.log"), (evaluate, tmp_path / "evaluate.log")
    )
    assert not marker.exists()  # no payload ran in any of the three
    for res, what, path in ((res_train, "checkpoint", ckpt), (res_infer, "weights file", weights),
                            (res_eval, "pretrained weights", expert)):  # fmt: skip
        assert res.returncode != 0
        assert f"refused to load {what} {path}" in res.output, res.output[-3000:]
        assert "UnsafeCheckpointError" in res.output
    assert _hashes(resumed) == before  # the resume stopped before writing anything (nor did it leave its lock)
    assert not (tmp_path / "inf").exists()
    assert not (evaluated / "eval").exists()


# ---------------------------------------------------------------------------------------------------- 2. NaN / inf


def test_nan_images_are_bad_files(bundle, trained, nan_data, tmp_path):
    """A NIfTI volume with NaN/inf voxels (in the test split) stops the run in "initialize" (val/test check) before
    anything is written; with --skip_bad_files it is skipped and listed relative to dataset_dir."""
    data, victim = nan_data
    previous = _copy(trained, tmp_path / "previous")
    before = _hashes(previous)
    fresh = tmp_path / "fresh"
    stopped, skipped = _run_all(
        (_train(bundle, data, previous, max_epochs=3), tmp_path / "stopped.log"),
        (_train(bundle, data, fresh, max_epochs=1, skip_bad_files="true"), tmp_path / "skipped.log"),
    )
    assert stopped.returncode != 0
    assert "DataValidationError: 1 bad file in checking" in stopped.output and "val/test records" in stopped.output
    assert f"{victim}: 9 NaN and 1 infinite value(s)" in stopped.output, stopped.output[-3000:]
    assert _hashes(previous) == before  # every file of the previous run byte-identical, nothing added

    assert skipped.returncode == 0, skipped.output[-3000:]
    report = bundle.csv_rows(fresh / "skipped_files.csv")
    assert [(r["path"], r["stage"]) for r in report] == [(victim.relative_to(data).as_posix(), "load")]
    assert report[0]["reason"].startswith("9 NaN and 1 infinite value(s)")
    assert _epochs(fresh) == [1] and (fresh / "models" / "model.pt").is_file()
    _assert_no_input_path(fresh, data)


def test_nonfinite_loss_stops_and_keeps_the_last_checkpoint(bundle, trained, tiny_ct_demo, tmp_path):
    """A learning rate of 1e30 without clipping makes the loss non-finite in the first resumed epoch:
    NonFiniteLossError, and every file of the previous run stays byte-identical (the diverged state is not saved on
    the exception). With --max_nonfinite_batches 1 one such batch is skipped, the next one stops training, and the
    checkpoint on disk holds the last completed epoch with finite weights."""
    blowup = {"resume": "override", "learning_rate": 1e30, "max_grad_norm": "null", "warmup_steps": 0}
    stop, skip = _copy(trained, tmp_path / "stop"), _copy(trained, tmp_path / "skip")
    before = _hashes(stop)
    skip_args = _train(bundle, tiny_ct_demo, skip, max_epochs=4, max_nonfinite_batches=1, **blowup)
    res_stop, res_skip = _run_all(
        (_train(bundle, tiny_ct_demo, stop, max_epochs=3, **blowup), tmp_path / "stop.log"),
        (skip_args, tmp_path / "skip.log"),
    )
    assert res_stop.returncode != 0
    assert re.search(r"NonFiniteLossError: the training loss is (nan|inf|-inf) at epoch 3, iteration 6",
                     res_stop.output), res_stop.output[-3000:]  # fmt: skip
    after = _hashes(stop)
    assert {k: after[k] for k in before} == before  # checkpoint.pt, model.pt, model_info.json, log ... unchanged
    assert all(k.startswith("tensorboard/events.out.tfevents.") for k in set(after) - set(before))
    assert not (stop / LOCK_NAME).exists()

    assert res_skip.returncode != 0
    assert "batch skipped (1 of at most 1)" in res_skip.output, res_skip.output[-3000:]
    assert "(more than max_nonfinite_batches=1)" in res_skip.output and "at epoch 4" in res_skip.output
    ckpt = _checkpoint(skip)
    assert _checkpoint_epoch(skip) == 3 and _epochs(skip) == [1, 2, 3]
    for part in ("network", "ema"):
        assert all(torch.isfinite(v).all() for v in ckpt[part].values() if v.is_floating_point())
    assert ckpt["settings"]["learning_rate"] == 1e30


# ---------------------------------------------------------------------------------------------------- 5. resume


def test_resume_settings(bundle, trained, tiny_ct_demo, tmp_path):
    """A resume with other settings stops listing them (nothing written); --resume override continues with the new
    settings (logged, recorded); --resume false moves the previous run to previous_runs/<stamp>/ intact."""
    mismatch, override, restart = (_copy(trained, tmp_path / n) for n in ("mismatch", "override", "restart"))
    before = _hashes(mismatch)
    other = {"learning_rate": 0.001, "batch_size": 4, "weight_decay": 0.01}
    res_mismatch, res_override, res_restart = _run_all(
        (_train(bundle, tiny_ct_demo, mismatch, max_epochs=3, **other), tmp_path / "mismatch.log"),
        (
            _train(bundle, tiny_ct_demo, override, max_epochs=3, learning_rate=0.001, resume="override"),
            tmp_path / "override.log",
        ),
        (_train(bundle, tiny_ct_demo, restart, max_epochs=1, resume="false"), tmp_path / "restart.log"),
    )
    assert res_mismatch.returncode != 0
    out = res_mismatch.output
    assert "SettingsMismatchError: cannot resume from" in out, out[-3000:]
    for line in ("batch_size: 8 -> 4", "learning_rate: 0.002 -> 0.001", "weight_decay: 0.0 -> 0.01"):
        assert f"\n  {line}\n" in out, line
    assert "--resume override" in out and "--resume false" in out
    assert _hashes(mismatch) == before  # checked in "initialize": nothing written, nothing added

    assert res_override.returncode == 0, res_override.output[-3000:]
    assert "with new settings (--resume override): learning_rate: 0.002 -> 0.001" in res_override.output
    ckpt = _checkpoint(override)
    assert ckpt["settings"]["learning_rate"] == 0.001 and _checkpoint_epoch(override) == 3
    assert _epochs(override) == [1, 2, 3]

    assert res_restart.returncode == 0, res_restart.output[-3000:]
    stamps = list((restart / "previous_runs").iterdir())
    assert len(stamps) == 1 and re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z", stamps[0].name)
    assert _hashes(stamps[0]) == _hashes(trained)  # the whole previous run, moved, byte-identical
    assert f"moved to {stamps[0]}" in res_restart.output
    assert _epochs(restart) == [1] and _checkpoint_epoch(restart) == 1


# ---------------------------------------------------------------------------------------------------- 3. paths


def test_settings_fingerprint_and_no_input_path(bundle, trained, tiny_ct_demo, tmp_path):
    """The checkpoint records the run's settings with a data fingerprint; no JSON/CSV output of a train+inference
    run holds the absolute dataset_dir; the same data at another place resume without a settings difference."""
    settings = _checkpoint(trained)["settings"]
    assert {"model", "optimizer", "learning_rate", "weight_decay", "batch_size", "seed", "data"} <= set(settings)
    assert settings["optimizer"] == "AdamW" and settings["batch_size"] == 8 and settings["seed"] == 0
    assert re.fullmatch(r"[0-9a-f]{16}", settings["data"])
    model = settings["model"]
    assert model["image_size"] == 16 and model["network"]["channels"] == [8, 16] and "scheduler" in model
    assert model == bundle.model_info(trained)

    inferred, moved = _copy(trained, tmp_path / "inferred"), _copy(trained, tmp_path / "moved_run")
    elsewhere = _copy(tiny_ct_demo, tmp_path / "elsewhere" / "ct")
    infer = _argv(bundle, "inference", output_dir=inferred, num_samples=2, num_inference_steps=2)
    res_infer, res_moved = _run_all(
        (infer, tmp_path / "inference.log"), (_train(bundle, elsewhere, moved, max_epochs=3), tmp_path / "moved.log")
    )
    assert res_infer.returncode == 0, res_infer.output[-3000:]
    assert len(list((inferred / "samples").glob("sample_*.png"))) == 2
    _assert_no_input_path(inferred, tiny_ct_demo)

    assert res_moved.returncode == 0, res_moved.output[-3000:]
    assert "new settings" not in res_moved.output and _epochs(moved) == [1, 2, 3]
    assert _checkpoint(moved)["settings"]["data"] == settings["data"]
    _assert_no_input_path(moved, elsewhere)


# ---------------------------------------------------------------------------------------------------- 7. experts


def test_expert_configs_fail_early(bundle, trained, tiny_ct_demo, tmp_path):
    """train_expert.json on unlabelled data and evaluate.json without a trained expert fail at once with messages
    that say what is needed, writing nothing (no output folder, no samples)."""
    unlabelled = _nifti_collection(tmp_path / "unlabelled", class_names=(), per_class=4)
    expert_out = tmp_path / "expert_run"
    evaluated = _copy(trained, tmp_path / "evaluated")
    before = _hashes(evaluated)
    evaluate = _argv(bundle, "evaluate", dataset_dir=tiny_ct_demo, output_dir=evaluated, num_samples=4, num_seeds=1,
                     samples_per_class=1, num_inference_steps=2)  # fmt: skip
    res_expert, res_eval = _run_all(
        (_train(bundle, unlabelled, expert_out, "train_expert", max_epochs=1), tmp_path / "expert.log"),
        (evaluate, tmp_path / "evaluate.log"),
    )
    assert res_expert.returncode != 0
    assert "training an expert classifier needs class labels" in res_expert.output, res_expert.output[-3000:]
    assert not expert_out.exists()

    assert res_eval.returncode != 0
    expert = evaluated / "models" / "expert" / "best_model.pt"
    assert f"FileNotFoundError: expert checkpoint {expert}" in res_eval.output, res_eval.output[-3000:]
    assert "not found: train the expert first" in res_eval.output
    assert not (evaluated / "eval").exists() and _hashes(evaluated) == before  # failed before any sampling


# ------------------------------------------------------------------------------------------- 4 + 6. locks, kills


@pytest.mark.slow
def test_one_run_per_output_dir_and_kills_resume_cleanly(bundle, tiny_ct_demo, tmp_path):
    """A second run into a busy output_dir stops at once naming the first; SIGKILLs at four moments (mid-training,
    during start-up, a few epochs after a resume, inside a checkpoint save) each resume cleanly: the stale lock is
    taken over, the temporary file of the killed save is removed, train_log.csv holds every epoch once and
    TensorBoard (purge_step) no step twice."""
    out = tmp_path / "run"
    models = out / "models"
    long = _train(bundle, tiny_ct_demo, out, max_epochs=100_000, checkpoint_interval=3)

    # 1. a long run; a second one into the same output_dir stops at once, naming it; SIGKILL mid-training
    first = _start(long, tmp_path / "first.log")
    try:
        _wait_for(lambda: _lock_pid(out) == first.pid and _epoch_lines(first) >= 4, first, "the first run trains")
        second = _run(long, tmp_path / "second.log")
        assert first.poll() is None  # untouched by the second
    finally:
        first.kill()
        first.wait()
    assert second.returncode != 0 and second.seconds < 120
    assert "RunLockedError: another run is writing into" in second.output, second.output[-3000:]
    assert f"process {first.pid} (ct_lightweight training)" in second.output
    assert "Engine run" not in second.output  # stopped in "initialize", before loading data or training
    assert _lock_pid(out) == first.pid  # SIGKILL leaves the lock behind: stale

    # 2. the stale lock is taken over with a warning; SIGKILL during start-up, right after taking it
    taker = _start(long, tmp_path / "taker.log")
    try:
        _wait_for(lambda: _lock_pid(out) == taker.pid, taker, "the stale lock is taken over")
    finally:
        taker.kill()
        taker.wait()
    taken = f"taking over the lock {out / LOCK_NAME} of process {first.pid} (no longer running)"
    assert taken in (tmp_path / "taker.log").read_text()

    # 3. resume, SIGKILL a few epochs later (at any point of an epoch)
    third = _start(long, tmp_path / "third.log")
    try:
        _wait_for(lambda: _epoch_lines(third) >= 4, third, "the third run trains 4 epochs")
    finally:
        third.kill()
        third.wait()
    assert "resumed from" in (tmp_path / "third.log").read_text()

    # 4. resume, SIGKILL inside the checkpoint save: its temporary file is written, the rename never happens
    wrapper, marker = tmp_path / "hang_in_save.py", tmp_path / "saving"
    wrapper.write_text(HANG_IN_SAVE)
    resume_epoch = _checkpoint_epoch(out)
    saver = _start(long, tmp_path / "saver.log", script=(str(wrapper), str(marker)))
    try:
        _wait_for(marker.exists, saver, "the checkpoint save")
    finally:
        saver.kill()
        saver.wait()
    temp = Path(marker.read_text())
    assert temp.parent == models and re.fullmatch(r"\.checkpoint\.pt\.\w+\.tmp", temp.name) and temp.is_file()
    assert _checkpoint_epoch(out) == resume_epoch  # the interrupted save left the old checkpoint
    assert max(_epochs(out)) == resume_epoch + 3  # ... but its epochs were logged: they will be trained again

    # 5. the last run removes the temporary file, resumes and finishes
    final_epochs = resume_epoch + 4
    final = _run(_train(bundle, tiny_ct_demo, out, max_epochs=final_epochs, checkpoint_interval=3),
                 tmp_path / "final.log")  # fmt: skip
    assert final.returncode == 0, final.output[-3000:]
    assert f"removed 1 temporary file(s) left in {models} by an interrupted save: {temp.name}" in final.output
    assert f"resumed from {models / 'checkpoint.pt'} at epoch {resume_epoch}" in final.output
    assert not temp.exists() and not list(models.glob(".*")) and not (out / LOCK_NAME).exists()

    rows = bundle.csv_rows(out / "train_log.csv")
    per_epoch = int(rows[0]["iteration"])
    assert [int(r["epoch"]) for r in rows] == list(range(1, final_epochs + 1))  # each epoch once, in order
    assert [int(r["iteration"]) for r in rows] == [per_epoch * e for e in range(1, final_epochs + 1)]
    assert _checkpoint(out)["trainer"]["iteration"] == per_epoch * final_epochs

    events = sorted((out / "tensorboard").glob("events.out.tfevents.*"))
    raw = [e.step for f in events for e in EventFileLoader(str(f)).Load()
           if any(v.tag == "train/epoch_loss" for v in e.summary.value)]  # fmt: skip
    assert len(raw) > len(set(raw))  # the killed runs did log steps that were trained again ...
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    for tag in ("train/epoch_loss", "train/loss"):  # ... which purge_step hides: every step once, in order
        steps = [e.step for e in acc.Scalars(tag)]
        assert steps and steps == sorted(set(steps)), tag
    assert [e.step for e in acc.Scalars("train/epoch_loss")] == [per_epoch * e for e in range(1, final_epochs + 1)]
