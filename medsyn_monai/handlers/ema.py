"""Exponential moving average of the network weights, kept in a module declared in the config."""

from __future__ import annotations

import torch
from ignite.handlers import EMAHandler

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage(EMAHandler):
    """Ignite's :class:`~ignite.handlers.EMAHandler`, parametrised by ``decay`` and writing into ``ema_model``.

    After every iteration ``ema = decay * ema + (1 - decay) * weights``; diffusion models are sampled from the EMA
    weights (Ho et al. 2020; Song & Ermon 2020). Giving the EMA module explicitly (``ema_model``, e.g. a copy of the
    network declared in the bundle config) lets other config items (checkpoints, sample grids) refer to it while this
    handler sits in the trainer's handler list. ``warmup_iters`` ramps the decay up from ``0.9`` so that the short
    CPU runs of the bundles are not dominated by the random initial weights.

    Args:
        model: the trained network.
        ema_model: module with the same architecture that receives the averaged weights (initialised from
            ``model``); ``None`` creates a copy (available as ``.ema_model``).
        decay: EMA decay in (0, 1).
        warmup_iters: iterations over which the decay rises linearly from 0.9 to ``decay`` (``None``: no warm-up).
        handle_buffers: as in Ignite (``"copy"``, ``"update"``, ``"ema_train"``).

    Example:
        >>> import torch
        >>> net, copy = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        >>> ema = ExponentialMovingAverage(net, copy, decay=0.99)
        >>> ema.ema_model is copy and torch.equal(copy.weight, net.weight)
        True
    """

    def __init__(
        self,
        model: torch.nn.Module,
        ema_model: torch.nn.Module | None = None,
        decay: float = 0.999,
        warmup_iters: int | None = None,
        handle_buffers: str = "copy",
    ) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}.")
        warm = warmup_iters is not None and warmup_iters > 0 and decay > 0.9
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
