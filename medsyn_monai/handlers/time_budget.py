"""Stop training after a wall-clock budget."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from ignite.engine import Engine, Events

from medsyn_monai.utils.distributed import all_reduce_max, get_world_size

__all__ = ["TimeBudget"]


class TimeBudget:
    """Stop an Ignite engine once it has trained for ``max_minutes`` of wall-clock time.

    Useful to compare training recipes at the same compute budget ("25 CPU-minutes each") or to fit a run into a
    time slot. The clock starts when the first iteration of this run starts (set-up before it, such as loading the
    data, is not counted; ``torch.compile``'s compilation during the first forward pass is) and is checked after
    every iteration; when the budget is spent the engine
    terminates cleanly, so ``Events.COMPLETED`` handlers (final checkpoint, last sample grid) still run. A resumed
    run gets a fresh budget. The time spent by other handlers of the iteration (EMA, logging, periodic sample grids
    and checkpoints) counts towards the budget, as it would for a user watching the clock. In multi-process training
    (``torchrun``) the processes compare clocks after every iteration and all stop at the same one.

    Args:
        max_minutes: the budget in minutes; ``None`` or ``0`` switches the handler off (train for ``max_epochs``).
        clock: a function returning seconds (``time.perf_counter`` by default; replaceable in tests).

    Raises:
        ValueError: a negative or non-finite ``max_minutes``.

    Example:
        >>> from ignite.engine import Engine
        >>> ticks = iter(range(0, 1000, 30))  # a fake clock: 30 s per call
        >>> engine = Engine(lambda e, b: None)
        >>> budget = TimeBudget(max_minutes=1.5, clock=lambda: float(next(ticks)))
        >>> budget.attach(engine)
        >>> _ = engine.run(range(100), max_epochs=1)
        >>> engine.state.iteration, budget.stopped
        (3, True)
    """

    def __init__(self, max_minutes: float | None, clock: Callable[[], float] = time.perf_counter) -> None:
        if max_minutes is not None and (not math.isfinite(float(max_minutes)) or float(max_minutes) < 0):
            raise ValueError(f"max_minutes must be a finite number >= 0 or None, got {max_minutes}.")
        self.max_seconds = None if not max_minutes else 60.0 * float(max_minutes)
        self.clock = clock
        self.logger = logging.getLogger(__name__)
        self.stopped = False
        self._start: float | None = None

    def attach(self, engine: Engine) -> None:
        if self.max_seconds is None:
            return
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_STARTED, self._start_clock)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._check)

    @property
    def elapsed_seconds(self) -> float:
        """Seconds since the first iteration of this run (0 before it)."""
        return 0.0 if self._start is None else self.clock() - self._start

    def _reset(self, engine: Engine) -> None:
        self._start, self.stopped = None, False

    def _start_clock(self, engine: Engine) -> None:
        if self._start is None:  # the first iteration of this run (also of a resumed one)
            self._start = self.clock()

    def _check(self, engine: Engine) -> None:
        elapsed = self.elapsed_seconds
        if get_world_size() > 1:  # every process stops at the same iteration, when the slowest clock says so
            elapsed = all_reduce_max([elapsed])[0]
        if self.max_seconds is not None and elapsed >= self.max_seconds and not self.stopped:
            self.stopped = True
            self.logger.info(
                f"time budget of {self.max_seconds / 60:.1f} min reached after {elapsed / 60:.1f} min at epoch "
                f"{engine.state.epoch}, iteration {engine.state.iteration}: stopping training."
            )
            engine.terminate()
