"""TrainingStatsHandler: the rows of a partial epoch (stopped by TimeBudget), no duplicate row at an epoch's end, the
rows of epochs trained again replaced, non-finite losses left out, TensorBoard steps = iterations (purge_step works)."""

from __future__ import annotations

import csv
import logging
import math

import torch
from ignite.engine import Engine, Events
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from medsyn_monai.handlers import TrainingStatsHandler
from tests.handlers._helpers import attach_time_budget


def test_stats_of_a_partial_epoch_are_logged(tmp_path):
    net = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(engine, batch):
        return {"loss": torch.tensor(float(engine.state.iteration)), "image": torch.zeros(2, 1)}

    engine = Engine(step)
    TrainingStatsHandler(opt, csv_path=tmp_path / "log.csv").attach(engine)
    attach_time_budget(engine, max_minutes=1.0)  # 10 s per clock reading
    engine.run(range(4), max_epochs=5)  # 4 iterations per epoch, stopped after iteration 6 (in epoch 2)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [(r["epoch"], r["iteration"]) for r in rows] == [("1", "4"), ("2", "6")]
    assert float(rows[1]["mean_loss"]) == 5.5  # iterations 5 and 6 of the partial epoch

    full = Engine(step)
    TrainingStatsHandler(opt, csv_path=tmp_path / "full.csv").attach(full)
    full.add_event_handler(Events.EPOCH_COMPLETED(once=2), lambda e: e.terminate())  # stop at an epoch's end
    full.run(range(4), max_epochs=5)
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "full.csv"))] == ["1", "2"]  # no duplicate row


def _engine(loss_of=float, resume_epoch: int = 0) -> Engine:
    """An engine of 4 iterations an epoch whose loss is ``loss_of(iteration)`` (batch of 2 images); it continues after
    epoch ``resume_epoch`` as a resumed run does."""

    def step(engine, batch):
        return {"loss": torch.tensor(loss_of(engine.state.iteration)), "image": torch.zeros(2, 1)}

    engine = Engine(step)
    if resume_epoch:
        engine.load_state_dict({"epoch": resume_epoch, "max_epochs": resume_epoch, "epoch_length": 4})
    return engine


def _stats(engine: Engine, **kwargs) -> TrainingStatsHandler:
    stats = TrainingStatsHandler(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1), **kwargs)
    stats.attach(engine)
    return stats


def test_epochs_trained_again_replace_their_rows(tmp_path, caplog):
    log = tmp_path / "log.csv"
    first = _engine()
    _stats(first, csv_path=log)
    first.run(range(4), max_epochs=3)
    header, row_1 = log.read_text().splitlines()[:2]
    with open(log, "a") as f:
        f.write("4,16,14.")  # killed while writing the row of epoch 4: a line cut short
    # resumed from the checkpoint of epoch 1 (the kill came before the later ones): epochs 2-4 are trained again
    resumed = _engine(lambda it: 10.0 * it, resume_epoch=1)
    with caplog.at_level(logging.INFO, logger="medsyn_monai.train"):
        _stats(resumed, csv_path=log)
        resumed.run(range(4), max_epochs=4)
    lines = log.read_text().splitlines()
    assert lines[:2] == [header, row_1]  # the rows of earlier epochs stay as they were
    rows = list(csv.DictReader(open(log)))
    assert [(r["epoch"], r["iteration"], float(r["mean_loss"])) for r in rows] == [
        ("1", "4", 2.5), ("2", "8", 65.0), ("3", "12", 105.0), ("4", "16", 145.0)]  # fmt: skip
    assert f"{log}: dropped 3 row(s) of epochs >= 2 (trained again)" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]  # rewritten atomically, no temporary file

    # a run that starts from scratch over the log of an earlier one keeps the header, not the rows
    again = _engine(lambda it: -1.0)
    _stats(again, csv_path=log)
    again.run(range(4), max_epochs=1)
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and lines[0] == header and lines[1].startswith("1,4,-1.0,")


def test_line_cut_short_dropped_rows_of_earlier_epochs_kept(tmp_path):
    log = tmp_path / "log.csv"
    first = _engine()
    _stats(first, csv_path=log)
    first.run(range(4), max_epochs=10)
    before = log.read_bytes()
    with open(log, "a") as f:
        f.write("1")  # killed while writing the row of epoch 11: what is there reads as "epoch 1"
    resumed = _engine(resume_epoch=10)  # the checkpoint holds epoch 10: rows 1-10 stay
    _stats(resumed, csv_path=log)
    resumed.run(range(4), max_epochs=11)
    assert log.read_bytes().startswith(before)
    rows = list(csv.DictReader(open(log)))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 12)) and rows[-1]["iteration"] == "44"


def test_resumed_run_with_other_columns_rewrites_the_table(tmp_path):
    """A run resumed with more logged keys (e.g. the alignment statistics of a newer release) keeps one consistent
    table: the new columns are added, with nan in the rows that were logged without them; and the other way round."""
    log = tmp_path / "log.csv"

    def step(engine, batch):
        out = {"loss": torch.tensor(1.0), "image": torch.zeros(2, 1), "loss_align": torch.tensor(0.5)}
        return {**out, "align_proj_std": torch.tensor(0.25)} if engine.state.epoch > 1 else out

    first = Engine(step)
    _stats(first, csv_path=log, extra_keys=["loss_align"])
    first.run(range(2), max_epochs=1)
    resumed = Engine(step)
    resumed.load_state_dict({"epoch": 1, "max_epochs": 1, "epoch_length": 2})
    _stats(resumed, csv_path=log, extra_keys=["loss_align", "align_proj_std"])
    resumed.run(range(2), max_epochs=3)
    rows = list(csv.DictReader(open(log)))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and float(rows[0]["mean_loss_align"]) == 0.5
    assert rows[0]["mean_align_proj_std"] == "nan" and [float(r["mean_align_proj_std"]) for r in rows[1:]] == [0.25] * 2
    assert log.read_text().splitlines()[0].endswith("mean_loss_align,mean_align_proj_std")
    # resumed again without the new key: its column stays, nan in the new row; no row is dropped as "cut short"
    again = Engine(step)
    again.load_state_dict({"epoch": 3, "max_epochs": 3, "epoch_length": 2})
    _stats(again, csv_path=log, extra_keys=["loss_align"])
    again.run(range(2), max_epochs=4)
    rows = list(csv.DictReader(open(log)))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"] and rows[3]["mean_align_proj_std"] == "nan"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


def test_nonfinite_losses_left_out_of_the_means(tmp_path):
    losses = {1: 1.0, 2: float("nan"), 3: 3.0, 4: float("inf"), 5: 5.0, 6: 7.0, 7: float("-inf"), 8: 9.0}
    engine = _engine(losses.__getitem__)
    stats = _stats(engine, csv_path=tmp_path / "log.csv")
    engine.run(range(4), max_epochs=2)
    assert [row["mean_loss"] for row in stats.history] == [2.0, 7.0]  # skipped batches count for nothing
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [float(r["mean_loss"]) for r in rows] == [2.0, 7.0]
    assert all(math.isfinite(float(r["images_per_second"])) for r in rows)


def test_tensorboard_steps_are_iterations_and_purge_step_hides_a_killed_run(tmp_path):
    tb = tmp_path / "tb"
    writer = SummaryWriter(str(tb))
    engine = _engine()
    _stats(engine, summary_writer=writer, iteration_interval=2)
    engine.run(range(4), max_epochs=3)  # epochs end at iterations 4, 8, 12
    writer.close()
    # event files are read in name order (time in seconds, then a counter): make the first run's file come first
    (first_file,) = tb.iterdir()
    first_file.rename(tb / "events.out.tfevents.0000000000.first_run")
    # killed after epoch 3 but the last checkpoint holds epoch 1 (iteration 4): the resumed run logs from step 5 on
    writer = SummaryWriter(str(tb), purge_step=5)
    resumed = _engine(lambda it: 10.0 * it, resume_epoch=1)
    _stats(resumed, summary_writer=writer, iteration_interval=2)
    resumed.run(range(4), max_epochs=3)
    writer.close()

    events = EventAccumulator(str(tb))
    events.Reload()
    epoch_loss = [(e.step, e.value) for e in events.Scalars("train/epoch_loss")]
    assert epoch_loss == [(4, 2.5), (8, 65.0), (12, 105.0)]  # one value a step: the killed run's are hidden
    assert [e.step for e in events.Scalars("train/images_per_second")] == [4, 8, 12]
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
        (2, 2.0), (4, 4.0), (6, 60.0), (8, 80.0), (10, 100.0), (12, 120.0)]  # fmt: skip
