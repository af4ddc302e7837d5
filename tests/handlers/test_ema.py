"""ExponentialMovingAverage: fixed decay with warm-up, and the adaptive decay that follows the iteration on resume."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from medsyn_monai.handlers import ExponentialMovingAverage


def test_exponential_moving_average_handler():
    net, holder = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(net.weight, 0.0)
    ema = ExponentialMovingAverage(net, holder, decay=0.9)
    assert ema.ema_model is holder and not holder.weight.requires_grad

    def step(engine, batch):
        with torch.no_grad():
            net.weight.fill_(1.0)

    engine = Engine(step)
    ema.attach(engine)
    engine.run([0, 0], max_epochs=1)
    assert torch.allclose(holder.weight, torch.tensor([[1 - 0.9**2]]))  # two updates towards 1
    with pytest.raises(ValueError, match="decay"):
        ExponentialMovingAverage(net, decay=1.0)
    with pytest.raises(ValueError, match="separate"):
        ExponentialMovingAverage(net, net)
    adaptive = ExponentialMovingAverage(net, decay=0.99, warmup_iters=10, adaptive="true")  # its own warm-up
    assert adaptive.adaptive is True and adaptive._momentum_lambda_obj is None  # no linear warm-up
    assert ExponentialMovingAverage(net, decay=0.99, warmup_iters=10)._momentum_lambda_obj is not None
    with pytest.raises(ValueError, match="warmup_iters"):
        ExponentialMovingAverage(net, decay=0.99, warmup_iters=-1)


def test_adaptive_ema_follows_the_iteration_and_resumes():
    net, holder = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(net.weight, 0.0)
    ema = ExponentialMovingAverage(net, holder, decay=0.999, adaptive=True)

    def step(engine, batch):
        with torch.no_grad():
            net.weight.fill_(float(engine.state.iteration))  # the weights after iteration t are t

    engine = Engine(step)
    ema.attach(engine)
    engine.run(range(30), max_epochs=1)
    expected = 0.0
    for t in range(1, 31):
        d = min(0.999, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * t
    assert holder.weight.item() == pytest.approx(expected, rel=1e-5)
    # a resumed run continues the schedule from the restored iteration, not from its start
    resumed = Engine(step)
    ExponentialMovingAverage(net, holder, decay=0.999, adaptive=True).attach(resumed)
    holder.weight.data.fill_(expected)
    resumed.state.iteration, resumed.state.epoch = 30, 1
    resumed.run(range(30), max_epochs=2)
    for t in range(31, 61):
        d = min(0.999, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * t
    assert holder.weight.item() == pytest.approx(expected, rel=1e-5)
