"""Helpers shared by the tests of :mod:`medsyn_monai.handlers`."""

from __future__ import annotations

import itertools

from ignite.engine import Engine

from medsyn_monai.handlers import TimeBudget


def attach_time_budget(engine: Engine, max_minutes: float, seconds_per_reading: int = 10) -> TimeBudget:
    """Attach a :class:`TimeBudget` to ``engine`` whose clock reads 0 s, then ``seconds_per_reading`` more at every
    later reading (no real time passes)."""
    clock = itertools.count(0, seconds_per_reading)
    budget = TimeBudget(max_minutes=max_minutes, clock=lambda: float(next(clock)))
    budget.attach(engine)
    return budget
