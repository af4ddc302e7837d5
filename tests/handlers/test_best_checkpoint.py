"""BestCheckpointHandler: keeps the weights of the best epoch, resumes from the recorded best, min mode, errors."""

from __future__ import annotations

import json

import pytest
import torch
from ignite.engine import Engine, Events

from medsyn_monai.handlers import BestCheckpointHandler


def _engine_with_metric(values, net, offset: float = 0.0):
    """An Ignite engine whose epoch ``e`` reports ``values[e - 1]`` and sets the network's weight to ``offset + e``."""
    engine = Engine(lambda e, b: None)

    @engine.on(Events.EPOCH_STARTED)
    def _(e):
        e.state.metrics["score"] = values[e.state.epoch - 1]
        with torch.no_grad():
            net.weight.fill_(offset + e.state.epoch)

    return engine


def test_best_checkpoint_handler(tmp_path):
    net = torch.nn.Linear(1, 1)
    handler = BestCheckpointHandler(tmp_path, net, metric_name="score")
    engine = _engine_with_metric([0.5, 0.9, float("nan"), 0.7], net)
    handler.attach(engine)
    engine.run([0], max_epochs=4)
    assert (handler.best_value, handler.best_epoch) == (0.9, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_metric.json", "best_model.pt"]  # no temp files left
    assert torch.load(tmp_path / "best_model.pt", weights_only=True)["weight"].item() == 2.0  # the weights of epoch 2
    record = json.loads((tmp_path / "best_metric.json").read_text())
    assert record["metric"] == "score" and record["value"] == 0.9 and record["epoch"] == 2
    assert record["metrics"] == {"score": 0.9}

    # resuming: the recorded best must be beaten before anything is overwritten
    resumed = BestCheckpointHandler(tmp_path, net, metric_name="score")
    assert resumed.best_value == 0.9
    engine2 = _engine_with_metric([0.8, 0.95], net, offset=10.0)
    resumed.attach(engine2)
    engine2.run([0], max_epochs=1)  # 0.8 < 0.9: the file of the first run stays
    assert torch.load(tmp_path / "best_model.pt", weights_only=True)["weight"].item() == 2.0
    engine2.run([0], max_epochs=2)  # 0.95 > 0.9 at epoch 2 (weight 12)
    assert torch.load(tmp_path / "best_model.pt", weights_only=True)["weight"].item() == 12.0
    assert json.loads((tmp_path / "best_metric.json").read_text())["value"] == 0.95
    # another metric name starts from scratch
    assert BestCheckpointHandler(tmp_path, net, metric_name="other").best_value is None


def test_best_checkpoint_handler_min_mode_and_errors(tmp_path):
    net = torch.nn.Linear(1, 1)
    handler = BestCheckpointHandler(tmp_path / "loss", net, metric_name="score", mode="min", resume=False)
    engine = _engine_with_metric([3.0, 1.0, 2.0], net)
    handler.attach(engine)
    engine.run([0], max_epochs=3)
    assert (
        handler.best_epoch == 2
        and torch.load(tmp_path / "loss" / "best_model.pt", weights_only=True)["weight"].item() == 2.0
    )
    with pytest.raises(ValueError, match="mode"):
        BestCheckpointHandler(tmp_path, net, mode="best")
    missing = BestCheckpointHandler(tmp_path / "x", net, metric_name="auc")
    engine = _engine_with_metric([1.0], net)
    missing.attach(engine)
    with pytest.raises(KeyError, match="'auc' is not in engine.state.metrics"):
        engine.run([0], max_epochs=1)
