from __future__ import annotations

import itertools

import pytest
from ignite.engine import Engine, Events

from medsyn_monai.handlers import TimeBudget


def _engine():
    return Engine(lambda e, b: None)


def test_stops_after_budget_and_runs_completed_handlers():
    clock = itertools.count(0, 10)  # 10 s per clock reading
    engine = _engine()
    budget = TimeBudget(max_minutes=1.0, clock=lambda: float(next(clock)))
    budget.attach(engine)
    completed = []
    engine.add_event_handler(Events.COMPLETED, lambda e: completed.append(e.state.iteration))
    engine.run(range(50), max_epochs=3)
    assert budget.stopped
    assert engine.state.iteration == 6  # start at 0 s, readings 10..60 s after iterations 1..6
    assert completed == [6]  # a clean stop: COMPLETED handlers (final checkpoint) still run


def test_off_by_default_and_fresh_budget_per_run():
    engine = _engine()
    TimeBudget(None).attach(engine)
    TimeBudget(0).attach(engine)
    engine.run(range(5), max_epochs=2)
    assert engine.state.iteration == 10

    clock = itertools.count(0, 10)
    engine = _engine()
    budget = TimeBudget(max_minutes=0.5, clock=lambda: float(next(clock)))
    budget.attach(engine)
    iterations = []
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: iterations.append(e.state.iteration))
    engine.run(range(50), max_epochs=1)
    assert budget.stopped and len(iterations) == 3
    engine.run(range(50), max_epochs=1)  # a second run (e.g. resumed from a checkpoint) gets the whole budget again
    assert budget.stopped and len(iterations) == 6


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_bad_budget(bad):
    with pytest.raises(ValueError, match="max_minutes"):
        TimeBudget(bad)


def test_stats_of_a_partial_epoch_are_logged(tmp_path):
    import csv

    import torch

    from medsyn_monai.handlers import TrainingStatsHandler

    net = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(engine, batch):
        return {"loss": torch.tensor(float(engine.state.iteration)), "image": torch.zeros(2, 1)}

    engine = Engine(step)
    TrainingStatsHandler(opt, csv_path=tmp_path / "log.csv").attach(engine)
    clock = itertools.count(0, 10)
    TimeBudget(max_minutes=1.0, clock=lambda: float(next(clock))).attach(engine)
    engine.run(range(4), max_epochs=5)  # 4 iterations per epoch, stopped after iteration 6 (in epoch 2)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [(r["epoch"], r["iteration"]) for r in rows] == [("1", "4"), ("2", "6")]
    assert float(rows[1]["mean_loss"]) == 5.5  # iterations 5 and 6 of the partial epoch

    full = Engine(step)
    TrainingStatsHandler(opt, csv_path=tmp_path / "full.csv").attach(full)
    full.add_event_handler(Events.EPOCH_COMPLETED(once=2), lambda e: e.terminate())  # stop at an epoch's end
    full.run(range(4), max_epochs=5)
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "full.csv"))] == ["1", "2"]  # no duplicate row
