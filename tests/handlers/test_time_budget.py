"""TimeBudget: a clean stop after the budget, off by default, a fresh budget per run."""

from __future__ import annotations

import pytest
from ignite.engine import Engine, Events

from medsyn_monai.handlers import TimeBudget
from tests.handlers._helpers import attach_time_budget


def _engine():
    return Engine(lambda e, b: None)


def _iterations_at(engine: Engine, event: Events) -> list[int]:
    """The iteration counts at every ``event`` of ``engine`` (filled as it runs)."""
    seen: list[int] = []
    engine.add_event_handler(event, lambda e: seen.append(e.state.iteration))
    return seen


def test_stops_after_budget_and_runs_completed_handlers():
    engine = _engine()
    budget = attach_time_budget(engine, max_minutes=1.0)  # 10 s per clock reading
    completed = _iterations_at(engine, Events.COMPLETED)
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

    engine = _engine()
    budget = attach_time_budget(engine, max_minutes=0.5)
    iterations = _iterations_at(engine, Events.ITERATION_COMPLETED)
    engine.run(range(50), max_epochs=1)
    assert budget.stopped and len(iterations) == 3
    engine.run(range(50), max_epochs=1)  # a second run (e.g. resumed from a checkpoint) gets the whole budget again
    assert budget.stopped and len(iterations) == 6


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_bad_budget(bad):
    with pytest.raises(ValueError, match="max_minutes"):
        TimeBudget(bad)
