"""AtomicCheckpoint: atomic weights-only files, resume after a stop or a crash, recorded settings compared on resume
(auto / override / restart), clear mismatch errors, crafted files and non-finite weights refused, epoch snapshots."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from ignite.engine import Events
from ignite.handlers import EMAHandler
from monai.networks.schedulers import DDPMScheduler
from monai.optimizers import WarmupCosineSchedule

from medsyn_monai.engines import DiffusionTrainer
from medsyn_monai.handlers import (
    AtomicCheckpoint,
    NonFiniteWeightsError,
    SettingsMismatchError,
    parse_resume,
    settings_differences,
)
from medsyn_monai.networks.nets import LightweightDiffusionUNet
from medsyn_monai.utils import ResumeMode, UnsafeCheckpointError, file_sha256, load_torch_file
from tests._helpers import noise_batches, save_crafted_pickle, tiny_unet

LOGGER = "medsyn_monai.handlers.checkpoint"


def _decay(step: int) -> float:
    """The LR schedule of :func:`_make_run`: ``lr / (1 + iteration)``."""
    return 1.0 / (1 + step)


@dataclass
class Run:
    trainer: DiffusionTrainer
    net: LightweightDiffusionUNet
    ema: EMAHandler
    opt: torch.optim.AdamW
    sched: torch.optim.lr_scheduler.LambdaLR
    ckpt: AtomicCheckpoint


def _make_run(folder: Path, max_epochs: int, fail_at=None, lr=1e-3, weight_decay=0.0, batches=3, **ckpt_kwargs) -> Run:
    """A run of 3 iterations an epoch checkpointed into ``folder/models``: AdamW, an LR scheduler stepped every
    iteration, EMA weights; settings ``{"lr": lr}`` unless ``ckpt_kwargs`` gives others."""
    net = tiny_unet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _decay)
    ema = EMAHandler(net, momentum=0.1)
    ckpt_kwargs.setdefault("settings", {"lr": lr})
    save_dict = {"network": net, "ema": ema.ema_model, "optimizer": opt, "lr_scheduler": sched}
    ckpt = AtomicCheckpoint(folder / "models", save_dict, **ckpt_kwargs)
    trainer = DiffusionTrainer(
        "cpu", max_epochs, noise_batches(batches), net, opt, DDPMScheduler(100), train_handlers=[ema, ckpt]
    )
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: sched.step())
    if fail_at is not None:

        def fail(engine):
            if engine.state.iteration == fail_at:
                raise RuntimeError("simulated crash")

        trainer.add_event_handler(Events.ITERATION_COMPLETED, fail)
    return Run(trainer, net, ema, opt, sched, ckpt)


def _hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below ``folder`` (hidden ones included), by path relative to it."""
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_checkpoint_atomic_files_settings_and_resume(tmp_path):
    run = _make_run(tmp_path, 2, settings={"lr": 1e-3, "channels": (8, 16), "data": "f00d"})
    assert run.ckpt.purge_step == 0  # nothing to resume: TensorBoard hides nothing
    run.trainer.run()
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint.pt", "model.pt"]  # no temporary files left
    state = load_torch_file(models / "checkpoint.pt")  # weights-only
    assert set(state) == {"network", "ema", "optimizer", "lr_scheduler", "trainer", "settings"}
    assert state["settings"] == {"lr": 1e-3, "channels": [8, 16], "data": "f00d"}  # plain types, as compared
    assert state["trainer"]["iteration"] == 6  # 2 epochs of 3 batches
    model_pt = load_torch_file(models / "model.pt")
    assert all(torch.equal(model_pt[k], v) for k, v in run.ema.ema_model.state_dict().items())
    assert not all(torch.equal(model_pt[k], v) for k, v in run.net.state_dict().items())  # EMA != raw weights

    # extend the run with the same settings (a list where the first run had a tuple): resumes at epoch 2
    run2 = _make_run(tmp_path, 4, settings={"data": "f00d", "channels": [8, 16], "lr": 1e-3})
    assert run2.ckpt.purge_step == 7  # events after iteration 6 (the checkpoint) are hidden
    epochs = []
    run2.trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    run2.trainer.run()
    assert run2.ckpt.resumed_from_epoch == 2
    assert epochs == [3, 4]
    assert run2.trainer.state.iteration == 12 and run2.sched.last_epoch == 12  # the LR schedule went on too


def _cosine_run(folder: Path, max_epochs: int) -> tuple[DiffusionTrainer, WarmupCosineSchedule, AtomicCheckpoint]:
    """3 iterations an epoch with the bundles' LR schedule: warm-up, then a cosine over ``max_epochs`` epochs."""
    net = tiny_unet()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    sched = WarmupCosineSchedule(opt, warmup_steps=2, t_total=3 * max_epochs, end_lr=1e-5)
    ckpt = AtomicCheckpoint(folder / "models", {"network": net, "optimizer": opt, "lr_scheduler": sched},
                            settings={"lr": 1e-3}, model_key="network")  # fmt: skip
    trainer = DiffusionTrainer("cpu", max_epochs, noise_batches(3), net, opt, DDPMScheduler(100), train_handlers=[ckpt])
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: sched.step())
    return trainer, sched, ckpt


def test_resume_with_more_epochs_follows_the_longer_schedule(tmp_path):
    """Extending a finished run (2 -> 4 epochs) resumes the step counters but keeps the current run's schedule
    (t_total of 4 epochs): the checkpoint's would have ended the cosine at the old length and then climbed again."""
    trainer, _, _ = _cosine_run(tmp_path, 2)
    trainer.run()
    trainer, sched, ckpt = _cosine_run(tmp_path, 4)
    used = []
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: used.append(sched.optimizer.param_groups[0]["lr"]))
    trainer.run()
    assert ckpt.resumed_from_epoch == 2 and sched.t_total == 12 and sched.last_epoch == 12
    expected = WarmupCosineSchedule(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3), 2, 12, 1e-5)
    reference = []
    for _ in range(12):
        reference.append(expected.optimizer.param_groups[0]["lr"])
        expected.optimizer.step()
        expected.step()
    assert used == pytest.approx(reference[6:])  # the iterations 7..12 of one uninterrupted 4-epoch run
    assert used == sorted(used, reverse=True) and used[0] < 1e-3


def test_resume_after_crash(tmp_path):
    run = _make_run(tmp_path, 3, fail_at=5)  # crash in epoch 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        run.trainer.run()
    state = load_torch_file(tmp_path / "models" / "checkpoint.pt")
    assert state["trainer"]["iteration"] == 5  # saved on the exception
    run2 = _make_run(tmp_path, 3)
    assert run2.ckpt.purge_step == 6
    run2.trainer.run()
    assert run2.ckpt.resumed_from_epoch == 1  # iteration 5 = inside epoch 2: epochs 1 done, epoch 2 resumes mid-way
    assert run2.trainer.state.epoch == 3 and run2.trainer.state.iteration == 9


@pytest.mark.parametrize("resume, settings", [(True, {"lr": 1e-3}), ("override", {"lr": 1e-3, "channels": [8, 32]})])
def test_resume_network_mismatch_is_clear(tmp_path, resume, settings):
    """Another network than the checkpoint's stops with an error naming the file, even with --resume override."""
    _make_run(tmp_path, 1).trainer.run()
    net = LightweightDiffusionUNet(channels=(8, 32), norm_num_groups=4)
    opt = torch.optim.Adam(net.parameters())
    ckpt = AtomicCheckpoint(tmp_path / "models", {"network": net, "ema": net, "optimizer": opt}, resume=resume,
                            settings=settings)  # fmt: skip
    trainer2 = DiffusionTrainer("cpu", 2, noise_batches(3), net, opt, DDPMScheduler(100), train_handlers=[ckpt])
    checkpoint = tmp_path / "models" / "checkpoint.pt"
    with pytest.raises(RuntimeError, match=f"cannot resume from {re.escape(str(checkpoint))}: it does not match"):
        trainer2.run()


def test_settings_mismatch_lists_differences_and_changes_no_file(tmp_path):
    tensorboard, log = tmp_path / "tensorboard", tmp_path / "train_log.csv"
    settings = {"lr": 1e-3, "batch_size": 4, "network": {"channels": [8, 16]}, "data_fingerprint": "a1b2"}
    outputs = [tensorboard, log]
    _make_run(tmp_path, 1, settings=settings, model_info={"image_size": 8}, run_outputs=outputs).trainer.run()
    tensorboard.mkdir()
    (tensorboard / "events.out.tfevents.1").write_bytes(b"events")
    log.write_text("epoch,iteration\n1,3\n")
    before = _hashes(tmp_path)
    assert {"models/checkpoint.pt", "models/model.pt", "models/model_info.json"} <= set(before)

    changed = {"lr": 5e-4, "network": {"channels": [8, 32]}, "data_fingerprint": "a1b2", "seed": 7}
    run = _make_run(tmp_path, 2, lr=5e-4, settings=changed, model_info={"image_size": 16}, run_outputs=outputs)
    with pytest.raises(SettingsMismatchError) as info:
        run.trainer.run()
    msg = str(info.value)
    checkpoint = tmp_path / "models" / "checkpoint.pt"
    assert msg.startswith(f"cannot resume from {checkpoint}: it was trained with other settings (recorded -> now):\n")
    listed = msg.split("(recorded -> now):\n")[1].split("\nRun with")[0].splitlines()
    assert [line.strip() for line in listed] == [
        "batch_size: 4 -> (not set)",
        "lr: 0.001 -> 0.0005",
        "network.channels: [8, 16] -> [8, 32]",
        "seed: (not recorded) -> 7",
    ]
    assert "--resume override" in msg and "--resume false" in msg and str(tmp_path / "previous_runs") in msg
    assert _hashes(tmp_path) == before  # nothing written, moved or removed
    assert run.trainer.state.iteration == 0


def test_settings_differences():
    recorded = {"lr": 0.1, "net": {"ch": [8, 16], "attn": None}, "size": 8, "scale": torch.tensor(0.5)}
    same = {"net": {"attn": None, "ch": (8, 16)}, "lr": 0.1, "size": 8, "scale": 0.5}  # tuple/list, tensor/float alike
    assert settings_differences(recorded, same) == []
    assert settings_differences({"net": {"ch": 8}}, {"net": 8, "x": "a"}) == [
        "net: (not recorded) -> 8",
        "net.ch: 8 -> (not set)",
        "x: (not recorded) -> 'a'",
    ]


def test_override_resumes_with_the_new_hyperparameters(tmp_path, caplog):
    _make_run(tmp_path, 1, lr=1e-3).trainer.run()
    saved = load_torch_file(tmp_path / "models" / "checkpoint.pt")
    saved_moments = saved["optimizer"]["state"][0]["exp_avg"]
    run = _make_run(tmp_path, 2, lr=5e-4, weight_decay=0.05, resume="override")
    at_start = {}

    @run.trainer.on(Events.STARTED)  # runs after the checkpoint's load (attached first)
    def _(engine):
        group = run.opt.param_groups[0]
        first = group["params"][0]
        at_start.update(lr=group["lr"], weight_decay=group["weight_decay"], base_lrs=run.sched.base_lrs,
                        scheduler_step=run.sched.last_epoch, adam_step=float(run.opt.state[first]["step"]),
                        iteration=engine.state.iteration)  # fmt: skip
        at_start["same_weights"] = all(torch.equal(v, saved["network"][k]) for k, v in run.net.state_dict().items())
        at_start["same_moments"] = torch.equal(run.opt.state[first]["exp_avg"], saved_moments)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run.trainer.run()
    # weights, optimizer state and step counts from the checkpoint; learning rate, weight decay and base LR now
    # the rate of the resumed step follows the schedule from the new base rate at once (LambdaLR)
    assert at_start == {"lr": pytest.approx(5e-4 * _decay(3)), "weight_decay": 0.05, "base_lrs": [5e-4],
                        "scheduler_step": 3, "adam_step": 3.0, "iteration": 3, "same_weights": True,
                        "same_moments": True}  # fmt: skip
    assert run.ckpt.resumed_from_epoch == 1 and run.trainer.state.iteration == 6
    assert run.opt.param_groups[0]["lr"] == pytest.approx(5e-4 * _decay(6))  # the schedule from the new base rate
    checkpoint = tmp_path / "models" / "checkpoint.pt"
    assert f"resuming {checkpoint} with new settings (--resume override): lr: 0.001 -> 0.0005" in caplog.text
    state = load_torch_file(checkpoint)
    assert state["settings"] == {"lr": 5e-4} and state["optimizer"]["param_groups"][0]["weight_decay"] == 0.05


def test_override_with_another_epoch_length_starts_the_next_epoch(tmp_path, caplog):
    """A resume whose epochs have another number of iterations (batch size or number of processes changed) trains
    whole epochs of the new length from the epoch after the saved one, instead of the checkpoint's epoch length."""
    _make_run(tmp_path, 2, settings={"batch": 4}).trainer.run()  # 3 iterations an epoch: saved at iteration 6
    run = _make_run(tmp_path, 3, batches=5, settings={"batch": 2}, resume="override")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run.trainer.run()
    assert run.trainer.state.epoch == 3 and run.trainer.state.iteration == 15  # epoch 3: iterations 11-15
    assert "its epochs had 3 iterations, this run's have 5; training goes on from the start of epoch 3" in caplog.text


def test_restart_moves_the_previous_run_aside(tmp_path, caplog):
    run_dir = tmp_path / "run"
    outputs = [run_dir / "tensorboard", run_dir / "train_log.csv", run_dir / "samples", tmp_path / "elsewhere.csv"]
    _make_run(run_dir, 1, model_info={"version": 1}, run_outputs=outputs).trainer.run()
    (run_dir / "tensorboard").mkdir()
    (run_dir / "tensorboard" / "events.out.tfevents.1").write_bytes(b"events")
    (run_dir / "train_log.csv").write_text("epoch,iteration\n1,3\n")
    (tmp_path / "elsewhere.csv").write_text("outside the run folder")  # samples/ was never written: nothing to move
    (run_dir / "notes.txt").write_text("not an output of the run")
    before = {**_hashes(run_dir), "elsewhere.csv": file_sha256(tmp_path / "elsewhere.csv")}
    del before["notes.txt"]

    run = _make_run(run_dir, 1, lr=5e-4, resume=False, model_info={"version": 2}, run_outputs=outputs)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert run.ckpt.purge_step == 0  # prepares: moves the earlier run, resumes nothing
    moved = run.ckpt.moved_to
    assert moved is not None and moved.parent == run_dir / "previous_runs"
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z", moved.name)
    assert _hashes(moved) == before  # every file byte-identical, at its path relative to the run folder
    assert sorted(before) == ["elsewhere.csv", "models/checkpoint.pt", "models/model.pt", "models/model_info.json",
                              "tensorboard/events.out.tfevents.1", "train_log.csv"]  # fmt: skip
    assert sorted(p.name for p in run_dir.iterdir()) == ["notes.txt", "previous_runs"]
    assert not (tmp_path / "elsewhere.csv").exists()
    assert f"the previous run's outputs were moved to {moved}" in caplog.text

    run.trainer.run()  # from scratch, with its own settings and model info
    assert run.ckpt.resumed_from_epoch is None and run.trainer.state.iteration == 3
    state = load_torch_file(run_dir / "models" / "checkpoint.pt")
    assert state["settings"] == {"lr": 5e-4} and state["trainer"]["iteration"] == 3
    assert json.loads((run_dir / "models" / "model_info.json").read_text()) == {"version": 2}
    assert _hashes(moved) == before


def test_weights_without_checkpoint_are_not_overwritten(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.pt").write_bytes(b"weights of an earlier run")
    (models / "model_info.json").write_text('{"image_size": 8}')
    before = _hashes(models)
    run = _make_run(tmp_path, 1)
    with pytest.raises(SettingsMismatchError) as info:
        run.trainer.run()
    msg = str(info.value)
    assert msg.startswith(f"{models} holds model.pt, model_info.json of an earlier run but no checkpoint.pt")
    assert "--resume false" in msg and str(tmp_path / "previous_runs") in msg
    assert _hashes(models) == before

    restart = _make_run(tmp_path, 1, resume="restart")
    restart.trainer.run()
    assert restart.ckpt.moved_to is not None and _hashes(restart.ckpt.moved_to / "models") == before
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint.pt", "model.pt"]


def test_crafted_checkpoint_is_refused_without_running_its_code(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    marker = tmp_path / "code_ran"
    path = save_crafted_pickle(models / "checkpoint.pt", marker)
    before = _hashes(models)
    run = _make_run(tmp_path, 1)
    with pytest.raises(UnsafeCheckpointError, match=f"^refused to load checkpoint {re.escape(str(path))}: "):
        run.trainer.run()
    assert not marker.exists() and _hashes(models) == before

    # a checkpoint cut short (e.g. copied while being written): a clear error, not a crash inside torch
    torch.save({"network": tiny_unet().state_dict()}, path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match=f"cannot read checkpoint {re.escape(str(path))}: not a complete"):
        _make_run(tmp_path, 1).ckpt.prepare()


def test_non_finite_weights_are_never_saved(tmp_path):
    _make_run(tmp_path, 1).trainer.run()
    models = tmp_path / "models"
    before = _hashes(models)
    run = _make_run(tmp_path, 2)

    def diverge(engine):
        with torch.no_grad():
            run.net.out_conv.weight[0, 0, 0, 0] = float("inf")

    run.trainer.add_event_handler(Events.ITERATION_COMPLETED(once=6), diverge)  # the last iteration of epoch 2
    with pytest.raises(NonFiniteWeightsError) as info:
        run.trainer.run()
    msg = str(info.value)
    assert msg.startswith("not saving epoch 2: NaN or infinite values in network.out_conv.weight;")
    assert f"{models / 'checkpoint.pt'} and {models / 'model.pt'} keep the last good state" in msg
    assert "--learning_rate" in msg
    assert _hashes(models) == before  # the checkpoint of epoch 1 byte-identical, no temporary file left
    assert load_torch_file(models / "checkpoint.pt")["trainer"]["iteration"] == 3


def test_prepare_removes_temporary_files_of_a_killed_save(tmp_path, caplog):
    _make_run(tmp_path, 1).trainer.run()
    models = tmp_path / "models"
    for name in (".checkpoint.pt.a1b2c3_x.tmp", ".model.pt.zz9.tmp"):
        (models / name).write_bytes(b"half written")
    (models / "notes.txt").write_text("mine")
    run = _make_run(tmp_path, 2)
    with caplog.at_level(logging.WARNING, logger="medsyn_monai.utils.io"):
        run.ckpt.prepare()
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint.pt", "model.pt", "notes.txt"]
    assert "removed 2 temporary file(s)" in caplog.text
    run.trainer.run()
    assert run.ckpt.resumed_from_epoch == 1 and run.trainer.state.iteration == 6


def test_model_info_written_with_the_first_checkpoint(tmp_path):
    info_path = tmp_path / "models" / "model_info.json"
    run = _make_run(tmp_path, 2, model_info={"image_size": 8})
    exists = []
    run.trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: exists.append(info_path.is_file()))
    run.trainer.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: run.ckpt.model_info.update(image_size=9))
    run.trainer.run()
    assert exists == [False, False, False, True, True, True]  # written at the end of epoch 1, with the checkpoint
    assert json.loads(info_path.read_text()) == {"image_size": 8}  # and only then


def test_no_file_when_failing_before_training(tmp_path):
    net = LightweightDiffusionUNet(in_channels=3, out_channels=3, channels=(8, 16), norm_num_groups=4)
    opt = torch.optim.Adam(net.parameters())
    ckpt = AtomicCheckpoint(tmp_path / "models", {"network": net, "optimizer": opt}, model_key="network",
                            settings={"in_channels": 3}, model_info={"in_channels": 3})  # fmt: skip
    trainer = DiffusionTrainer("cpu", 1, noise_batches(1), net, opt, DDPMScheduler(10), train_handlers=[ckpt])
    with pytest.raises(ValueError, match="channel"):
        trainer.run()
    assert not (tmp_path / "models").exists()  # neither checkpoint.pt nor model_info.json


@pytest.mark.parametrize(
    "value, mode",
    [(True, "auto"), ("auto", "auto"), ("Yes", "auto"), ("override", "override"), (False, "restart"),
     ("false", "restart"), ("restart", "restart"), (ResumeMode.OVERRIDE, "override")],
)  # fmt: skip
def test_parse_resume(value, mode):
    assert parse_resume(value) == ResumeMode(mode)


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="resume must be true .*got 'sometimes'"):
        parse_resume("sometimes")
    net = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="'settings' is reserved"):
        AtomicCheckpoint(tmp_path, {"network": net, "settings": net}, model_key="network")
    with pytest.raises(ValueError, match="resume must be"):
        AtomicCheckpoint(tmp_path, {"network": net}, model_key="network", resume="maybe")


def test_checkpoint_snapshots_keep_weights_of_given_epochs(tmp_path):
    net = tiny_unet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    ckpt = AtomicCheckpoint(tmp_path / "m", {"network": net, "optimizer": opt}, model_key="network",
                            snapshot_epochs=[1, 3])  # fmt: skip
    weights = {}
    trainer = DiffusionTrainer("cpu", 3, noise_batches(2), net, opt, DDPMScheduler(10), train_handlers=[ckpt])
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: weights.update({e.state.epoch: net.out_conv.weight.detach().clone()})
    )
    trainer.run()
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == ["checkpoint.pt", "model.pt", "model_epoch_0001.pt", "model_epoch_0003.pt"]
    first = load_torch_file(tmp_path / "m" / "model_epoch_0001.pt")
    assert torch.equal(first["out_conv.weight"], weights[1])
    assert not torch.equal(weights[1], weights[3])  # training went on after the first snapshot
    assert ckpt.snapshot_path(3) == tmp_path / "m" / "model_epoch_0003.pt"
    with pytest.raises(ValueError, match="positive"):
        AtomicCheckpoint(tmp_path, {"network": net}, model_key="network", snapshot_epochs=[0])
    with pytest.raises(ValueError, match="model_key"):
        AtomicCheckpoint(tmp_path, {"network": net}, model_key=None, snapshot_epochs=[2])
