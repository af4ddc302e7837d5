"""TrainingStatsHandler: the rows of a partial epoch (stopped by TimeBudget), and no duplicate row at an epoch's end."""

from __future__ import annotations

import csv

import torch
from ignite.engine import Engine, Events

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
