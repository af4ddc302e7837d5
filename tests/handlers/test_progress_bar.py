"""LossProgressBar: shows the loss of a MONAI trainer from attach(engine) alone, off when output is no terminal."""

from __future__ import annotations

import io
import re
import warnings

import pytest
import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer

from medsyn_monai.handlers import LossProgressBar


def _trainer() -> SupervisedTrainer:
    """A MONAI trainer of a 1-weight linear model on two batches (its output holds ``"loss"``, as in the bundles)."""
    torch.manual_seed(0)
    net = torch.nn.Linear(1, 1)
    x = torch.ones(2, 1)
    data = [{"image": x, "label": 0 * x}, {"image": -x, "label": x}]
    return SupervisedTrainer(device=torch.device("cpu"), max_epochs=1, train_data_loader=data, network=net,
                             optimizer=torch.optim.SGD(net.parameters(), lr=0.1), loss_function=torch.nn.MSELoss(),
                             decollate=False)  # fmt: skip


def test_shows_the_loss_of_each_iteration():
    out = io.StringIO()
    trainer = _trainer()
    losses = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output["loss"].item()))
    LossProgressBar(file=out, disable=False).attach(trainer)  # what a bundle's handler list does
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.run()
    assert not [w for w in caught if "requires_grad" in str(w.message)]  # the loss is detached before display
    shown = [float(v) for v in re.findall(r"loss=([0-9.e+-]+)", out.getvalue())]
    assert len(losses) == 2 and shown[-1] == pytest.approx(losses[-1], rel=1e-2)
    assert any(v == pytest.approx(losses[0], rel=1e-2) for v in shown)  # the first iteration's loss was shown too
    assert out.getvalue().endswith("\r")  # persist=False: the bar is cleared after the epoch


def test_off_when_output_is_not_a_terminal():
    bar = LossProgressBar(file=io.StringIO())
    assert bar.tqdm_kwargs["disable"] is None  # tqdm's automatic choice
    trainer = _trainer()
    bar.attach(trainer)
    trainer.run()
    assert bar.tqdm_kwargs["file"].getvalue() == ""  # a StringIO is no terminal


def test_persist_and_explicit_output_transform():
    out = io.StringIO()
    bar = LossProgressBar(persist=True, file=out, disable=False)
    engine = Engine(lambda e, b: {"loss": torch.tensor(b), "score": 10 * b})
    bar.attach(engine, output_transform=lambda o: {"score": o["score"]})  # the caller's transform is kept
    engine.run([0.5], max_epochs=2)
    text = out.getvalue()
    assert "score=5" in text and "loss=" not in text
    assert text.count("Epoch [2/2]") >= 1 and text.endswith("\n")  # persist=True keeps the bars
