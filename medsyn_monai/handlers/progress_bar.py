"""A tqdm progress bar that shows the loss, attachable from a bundle config."""

from __future__ import annotations

from typing import Any

from ignite.engine import Engine
from ignite.handlers import ProgressBar

from medsyn_monai.utils.distributed import is_main_process

__all__ = ["LossProgressBar"]


class LossProgressBar(ProgressBar):
    """Ignite's :class:`~ignite.handlers.ProgressBar` whose ``attach(engine)`` shows ``engine.state.output["loss"]``.

    MONAI bundles attach handlers with ``handler.attach(engine)`` only, so the loss display is set up here. The bar
    is shown on terminals and switched off automatically when output is not a terminal (log files, CI), where
    :class:`~medsyn_monai.handlers.TrainingStatsHandler` prints one line per epoch instead. In multi-process
    training (``torchrun``) only the main process shows it.

    Args:
        persist: keep the bar after each epoch.
        tqdm_kwargs: other ``tqdm`` arguments; ``disable`` defaults to ``None`` (auto: off when not a terminal).
    """

    def __init__(self, persist: bool = False, **tqdm_kwargs: Any) -> None:
        tqdm_kwargs.setdefault("disable", None)
        super().__init__(persist=persist, **tqdm_kwargs)

    def attach(self, engine: Engine, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]  # as ProgressBar
        if not is_main_process():
            return
        if not args and "output_transform" not in kwargs:
            kwargs["output_transform"] = lambda output: {"loss": float(output["loss"].detach())}
        super().attach(engine, *args, **kwargs)
