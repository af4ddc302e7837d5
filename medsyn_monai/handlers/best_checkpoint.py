"""Keep the weights of the best epoch by a key metric (atomic ``best_model.pt`` + ``best_metric.json``)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from torch import nn

from medsyn_monai.utils.io import atomic_write, load_torch_file, write_json

__all__ = ["BestCheckpointHandler"]


class BestCheckpointHandler:
    """Keep the weights of the best epoch by a key metric: ``best_model.pt`` plus ``best_metric.json``.

    Attach it to an evaluator (e.g. a :class:`ClassificationEvaluator` run by MONAI's
    :class:`~monai.handlers.ValidationHandler`) or to a trainer with metrics. At every ``EPOCH_COMPLETED`` it reads
    ``engine.state.metrics[metric_name]``; when the value improves on the best so far (larger with ``mode="max"``,
    smaller with ``"min"``; NaN never improves), the network's ``state_dict`` (on CPU, unwrapped from
    ``DataParallel``/``DistributedDataParallel``/``torch.compile``) is written to ``best_model.pt`` and the metric
    with the epoch (the trainer's epoch for a MONAI evaluator) and every scalar metric to ``best_metric.json``. Both
    files are written to a temporary file first and moved into place with :func:`os.replace`, so an interrupted run
    never leaves a half-written file. With ``resume=True`` the best value stored in an existing
    ``best_metric.json`` (same metric, ``best_model.pt`` present) is the one to beat.

    Args:
        save_dir: folder of the two files (created if needed).
        network: the network whose weights are saved.
        metric_name: key of ``engine.state.metrics`` to compare (e.g. ``"balanced_accuracy"``).
        mode: ``"max"`` or ``"min"``.
        model_name: file name of the weights.
        metric_file: file name of the JSON record.
        resume: start from the best value recorded in ``save_dir``.

    Raises:
        ValueError: bad ``mode``.
        KeyError: (at the end of an epoch) ``metric_name`` is not among the engine's metrics.

    Example:
        >>> import tempfile, torch
        >>> from ignite.engine import Engine
        >>> net, d = torch.nn.Linear(1, 1), tempfile.mkdtemp()
        >>> engine = Engine(lambda e, b: None)
        >>> engine.state.metrics = {}
        >>> handler = BestCheckpointHandler(d, net, metric_name="acc")
        >>> handler.attach(engine)
        >>> @engine.on(Events.EPOCH_STARTED)
        ... def _(e): e.state.metrics["acc"] = [0.5, 0.9, 0.7][e.state.epoch - 1]
        >>> _ = engine.run([0], max_epochs=3)
        >>> handler.best_value, handler.best_epoch, sorted(p.name for p in Path(d).iterdir())
        (0.9, 2, ['best_metric.json', 'best_model.pt'])
    """

    def __init__(
        self,
        save_dir: str | Path,
        network: torch.nn.Module,
        metric_name: str = "balanced_accuracy",
        mode: str = "max",
        model_name: str = "best_model.pt",
        metric_file: str = "best_metric.json",
        resume: bool = True,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}.")
        self.save_dir = Path(save_dir)
        self.network = network
        self.metric_name = metric_name
        self.mode = mode
        self.model_name = model_name
        self.metric_file = metric_file
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.logger = logging.getLogger(__name__)
        if resume:
            self._resume()

    @property
    def model_path(self) -> Path:
        return self.save_dir / self.model_name

    @property
    def metric_path(self) -> Path:
        return self.save_dir / self.metric_file

    def _resume(self) -> None:
        if not (self.metric_path.is_file() and self.model_path.is_file()):
            return
        try:
            record = json.loads(self.metric_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            self.logger.warning(f"ignoring unreadable {self.metric_path}: {e}")
            return
        if record.get("metric") == self.metric_name and record.get("mode", self.mode) == self.mode:
            if isinstance(record.get("value"), (int, float)):
                self.best_value = float(record["value"])
                self.best_epoch = record.get("epoch")
                self.logger.info(f"best {self.metric_name} so far: {self.best_value} (epoch {self.best_epoch})")

    def restore(self) -> nn.Module:
        """Load the best weights saved so far into the network (e.g. before testing it) and return it.

        Raises:
            FileNotFoundError: nothing saved yet (no epoch was evaluated).
        """
        if not self.model_path.is_file():
            raise FileNotFoundError(f"no best model in {self.save_dir} yet: no evaluation epoch has completed.")
        state = load_torch_file(self.model_path, "best weights")
        self.network.load_state_dict(state)
        self.logger.info(f"restored the best weights ({self.metric_name} {self.best_value}) from {self.model_path}")
        return self.network

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def is_better(self, value: float) -> bool:
        """Whether ``value`` improves on the best value so far."""
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.mode == "max" else value < self.best_value

    def __call__(self, engine: Engine) -> None:
        metrics = engine.state.metrics
        if self.metric_name not in metrics:
            raise KeyError(
                f"metric {self.metric_name!r} is not in engine.state.metrics (available: {sorted(metrics)})."
            )
        raw = metrics[self.metric_name]
        value = float(raw.item() if isinstance(raw, torch.Tensor) else raw) if raw is not None else float("nan")
        epoch = int(engine.state.epoch)
        if not self.is_better(value):
            return
        self.best_value, self.best_epoch = value, epoch
        self.save(epoch, metrics)

    def save(self, epoch: int, metrics: Mapping[str, Any] | None = None) -> None:
        """Write ``best_model.pt`` and ``best_metric.json`` atomically."""
        net: nn.Module = self.network
        while True:  # unwrap DataParallel / DistributedDataParallel / torch.compile
            if isinstance(net, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
                net = net.module
            elif isinstance(getattr(net, "_orig_mod", None), nn.Module):
                net = net._orig_mod  # type: ignore[assignment]  # torch.compile's OptimizedModule wraps the module
            else:
                break
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        atomic_write(self.model_path, lambda tmp: torch.save(state, tmp))
        scalars = {
            k: float(v.item() if isinstance(v, torch.Tensor) else v)
            for k, v in (metrics or {}).items()
            if isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1)
        }
        record = {
            "metric": self.metric_name,
            "value": self.best_value,
            "mode": self.mode,
            "epoch": epoch,
            "model": self.model_name,
            "metrics": scalars,
        }
        write_json(self.metric_path, record)
        self.logger.info(f"new best {self.metric_name} {self.best_value:.4f} at epoch {epoch}: saved {self.model_path}")
