"""Exponential moving average of the network weights, kept in a module declared in the config."""

from __future__ import annotations

import torch
from ignite.engine import Engine
from ignite.handlers import EMAHandler

from medsyn_monai.utils.cli import as_bool

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage(EMAHandler):
    """Ignite's :class:`~ignite.handlers.EMAHandler`, parametrised by ``decay`` and writing into ``ema_model``.

    After every iteration ``ema = decay * ema + (1 - decay) * weights``; diffusion models are sampled from the EMA
    weights (Ho et al. 2020; Song & Ermon 2020). Giving the EMA module explicitly (``ema_model``, e.g. a copy of the
    network declared in the bundle config) lets other config items (checkpoints, sample grids) refer to it while this
    handler sits in the trainer's handler list. Early weights must not dominate a short run's average; two warm-ups:

    - ``warmup_iters`` (without ``adaptive``): the decay rises linearly from ``0.9`` to ``decay`` over that many
      iterations;
    - ``adaptive=True``: at trainer iteration ``t`` the decay is ``min(decay, (1 + t) / (10 + t))`` (the
      ``num_updates`` rule of TensorFlow's ``ExponentialMovingAverage``), so the average spans about ``t / 10`` recent
      iterations early on and ``1 / (1 - decay)`` later: one ``decay`` (e.g. 0.999) suits a 1,000-iteration demo
      and a 10,000-iteration run alike. It follows ``engine.state.iteration``, so a resumed run continues the
      schedule.

    Args:
        model: the trained network.
        ema_model: module with the same architecture that receives the averaged weights (initialised from
            ``model``); ``None`` creates a copy (available as ``.ema_model``).
        decay: EMA decay in (0, 1).
        warmup_iters: iterations over which the decay rises linearly from 0.9 to ``decay`` (``None``: no warm-up).
        adaptive: use the decay ``min(decay, (1 + t) / (10 + t))`` at iteration ``t`` instead; it is its own warm-up,
            so ``warmup_iters`` is then not used (a config can keep both keys and switch with ``--ema_adaptive``). The
            command-line spellings of :func:`~medsyn_monai.utils.as_bool` are accepted.
        handle_buffers: as in Ignite (``"copy"``, ``"update"``, ``"ema_train"``).

    Example:
        >>> import torch
        >>> net, copy = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        >>> ema = ExponentialMovingAverage(net, copy, decay=0.99)
        >>> ema.ema_model is copy and torch.equal(copy.weight, net.weight)
        True
        >>> [round(ExponentialMovingAverage.adaptive_decay(0.999, t), 4) for t in (1, 100, 1000, 100000)]
        [0.1818, 0.9182, 0.9911, 0.999]
    """

    def __init__(
        self,
        model: torch.nn.Module,
        ema_model: torch.nn.Module | None = None,
        decay: float = 0.999,
        warmup_iters: int | None = None,
        handle_buffers: str = "copy",
        adaptive: bool = False,
    ) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}.")
        self.adaptive = as_bool(adaptive, "adaptive")
        if warmup_iters is not None and int(warmup_iters) < 0:
            raise ValueError(f"warmup_iters must be >= 0 or None, got {warmup_iters}.")
        warm = not self.adaptive and warmup_iters is not None and warmup_iters > 0 and decay > 0.9
        super().__init__(
            model,
            momentum=1.0 - decay,
            momentum_warmup=0.1 if warm else None,
            warmup_iters=warmup_iters if warm else None,
            handle_buffers=handle_buffers,
        )
        if ema_model is not None:
            if ema_model is model:
                raise ValueError("ema_model must be a separate module (a copy of the network), not the network itself.")
            ema_model.load_state_dict(self.ema_model.state_dict())
            for p in ema_model.parameters():
                p.requires_grad_(False)
            ema_model.train(self.ema_model.training)
            self.ema_model = ema_model
        self.decay = decay

    @staticmethod
    def adaptive_decay(decay: float, iteration: int) -> float:
        """The decay of ``adaptive=True`` at trainer iteration ``iteration``: ``min(decay, (1 + t) / (10 + t))``."""
        t = max(0, int(iteration))
        return min(float(decay), (1.0 + t) / (10.0 + t))

    def _update_ema_model(self, engine: Engine, name: str) -> None:
        if self.adaptive:  # the momentum of this update follows the trainer's iteration (restored on resume)
            setattr(engine.state, name, 1.0 - self.adaptive_decay(self.decay, engine.state.iteration))
        super()._update_ema_model(engine, name)
