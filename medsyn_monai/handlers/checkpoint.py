"""Atomic training checkpoints with automatic resume."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

__all__ = ["AtomicCheckpoint"]


class AtomicCheckpoint:
    """Save the whole training state atomically every ``save_interval`` epochs, and resume from it on restart.

    Two files are written into ``save_dir``, each to a temporary file first and then renamed into place (Ignite's
    :class:`~ignite.handlers.DiskSaver` with ``atomic=True``), so an interrupted run never leaves a half-written
    checkpoint:

    - ``checkpoint.pt``: every object of ``save_dict`` (network, EMA network, optimizer, LR scheduler, trainer
      state with epoch and iteration, ...), for resuming;
    - ``model.pt``: the ``state_dict`` of ``save_dict[model_key]`` alone (by default the EMA weights), for inference
      (the MONAI bundle convention ``models/model.pt``).

    With ``snapshot_epochs``, a copy of ``model.pt`` is also kept at each of those epochs as
    ``model_epoch_XXXX.pt`` (e.g. to evaluate a model at several points of one training run without changing its
    learning-rate schedule); they sit beside ``model.pt``, so every config that reads ``model_info.json`` from the
    weights' folder accepts them as ``ckpt_path``.

    Checkpoints are also written when training completes and, when ``save_on_exception``, when it fails (the error is
    re-raised). With ``resume=True`` and an existing ``checkpoint.pt``, every object is restored at
    ``Events.STARTED`` and training continues from the saved epoch up to the *current* ``max_epochs`` (so a finished
    run can be extended by raising ``max_epochs``). A checkpoint that does not fit the current network (other
    settings) stops the run with an error naming the file.

    Args:
        save_dir: folder for the checkpoint files (created if needed).
        save_dict: name → object with ``state_dict``/``load_state_dict`` (network, EMA network, optimizer, ...);
            ``None`` entries are left out (e.g. the feature-alignment projection of a run without alignment).
        engine_key: name under which the engine this handler is attached to is added to ``save_dict`` (its epoch and
            iteration counters make resuming possible); ``None`` to leave it out. Adding it at ``attach`` avoids a
            circular reference in bundle configs (the trainer lists this handler).
        save_interval: save every this many epochs (0 disables periodic saving).
        model_key: entry of ``save_dict`` written alone to ``model.pt`` (``None``: don't write ``model.pt``).
        resume: resume from ``checkpoint.pt`` when it exists.
        save_on_exception: also save when training raises an exception.
        checkpoint_name: file name of the full checkpoint.
        model_name: file name of the inference weights.
        snapshot_epochs: epochs after which ``model_epoch_XXXX.pt`` (the ``model_key`` weights) is written too.

    Example:
        >>> import tempfile, torch
        >>> from ignite.engine import Engine
        >>> net = torch.nn.Linear(2, 2)
        >>> engine = Engine(lambda e, b: None)
        >>> d = tempfile.mkdtemp()
        >>> AtomicCheckpoint(d, {"model": net}, model_key="model").attach(engine)
        >>> _ = engine.run([0, 1], max_epochs=2)
        >>> sorted(p.name for p in Path(d).iterdir())
        ['checkpoint.pt', 'model.pt']
    """

    def __init__(
        self,
        save_dir: str | Path,
        save_dict: Mapping[str, Any],
        save_interval: int = 1,
        engine_key: str | None = "trainer",
        model_key: str | None = "ema",
        resume: bool = True,
        save_on_exception: bool = True,
        checkpoint_name: str = "checkpoint.pt",
        model_name: str = "model.pt",
        snapshot_epochs: Sequence[int] | None = None,
    ) -> None:
        if save_interval < 0:
            raise ValueError(f"save_interval must be >= 0, got {save_interval}.")
        snapshots = sorted({int(e) for e in (snapshot_epochs or [])})
        if any(e < 1 for e in snapshots):
            raise ValueError(f"snapshot_epochs must be positive epoch numbers, got {list(snapshot_epochs or [])}.")
        if snapshots and model_key is None:
            raise ValueError("snapshot_epochs need model_key (the weights to keep).")
        save_dict = {name: obj for name, obj in save_dict.items() if obj is not None}
        if model_key is not None and model_key not in save_dict:
            raise ValueError(f"model_key {model_key!r} is not in save_dict (keys: {sorted(save_dict)}).")
        self.save_dir = Path(save_dir)
        self.save_dict = save_dict
        self.save_interval = save_interval
        self.engine_key = engine_key
        self.model_key = model_key
        self.resume = resume
        self.save_on_exception = save_on_exception
        self.checkpoint_name = checkpoint_name
        self.model_name = model_name
        self.snapshot_epochs = snapshots
        self.logger = logging.getLogger(__name__)
        self.resumed_from_epoch: int | None = None
        self._saved_iteration: int | None = None
        self._trained_iterations = 0  # iterations completed by this run (not counting resumed ones)

    @property
    def checkpoint_path(self) -> Path:
        return self.save_dir / self.checkpoint_name

    @property
    def model_path(self) -> Path:
        return self.save_dir / self.model_name

    def attach(self, engine: Engine) -> None:
        if self.engine_key is not None:
            self.save_dict[self.engine_key] = engine
        if self.resume:
            engine.add_event_handler(Events.STARTED, self.load)
        if self.save_interval > 0:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), self.save)
        engine.add_event_handler(Events.COMPLETED, self.save)
        if self.snapshot_epochs:
            engine.add_event_handler(Events.EPOCH_COMPLETED, self._snapshot)
        if self.save_on_exception:
            engine.add_event_handler(Events.ITERATION_COMPLETED, self._count_iteration)
            engine.add_event_handler(Events.EXCEPTION_RAISED, self._on_exception)

    def save(self, engine: Engine | None = None) -> None:
        """Write ``checkpoint.pt`` (and ``model.pt``) atomically (once per iteration count)."""
        iteration = engine.state.iteration if engine is not None else None
        if iteration is not None and iteration == self._saved_iteration:
            return  # e.g. COMPLETED right after the last epoch's periodic save
        saver = DiskSaver(self.save_dir, atomic=True, create_dir=True, require_empty=False)
        state = {name: obj.state_dict() for name, obj in self.save_dict.items()}
        saver(state, self.checkpoint_name)
        if self.model_key is not None:
            saver(state[self.model_key], self.model_name)
        self._saved_iteration = iteration
        epoch = engine.state.epoch if engine is not None else "?"
        self.logger.info(f"saved checkpoint of epoch {epoch} to {self.checkpoint_path}")

    def snapshot_path(self, epoch: int) -> Path:
        """Path of the weights kept after ``epoch`` (``snapshot_epochs``)."""
        return self.save_dir / f"{Path(self.model_name).stem}_epoch_{int(epoch):04d}{Path(self.model_name).suffix}"

    def _snapshot(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        if epoch not in self.snapshot_epochs:
            return
        saver = DiskSaver(self.save_dir, atomic=True, create_dir=True, require_empty=False)
        path = self.snapshot_path(epoch)
        model_key = self.model_key
        assert model_key is not None  # the constructor requires model_key with snapshot_epochs
        saver(self.save_dict[model_key].state_dict(), path.name)
        self.logger.info(f"kept the weights of epoch {epoch} as {path}")

    def load(self, engine: Engine) -> None:
        """Restore every object of ``save_dict`` from ``checkpoint.pt`` if it exists."""
        path = self.checkpoint_path
        if not path.is_file():
            return
        max_epochs = engine.state.max_epochs
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
            Checkpoint.load_objects(to_load=self.save_dict, checkpoint=checkpoint)
        except (RuntimeError, KeyError, ValueError) as e:
            raise RuntimeError(
                f"cannot resume from {path}: it does not match the current configuration ({e}). "
                "Use another output_dir, or move that checkpoint away to start from scratch."
            ) from e
        self.resumed_from_epoch = engine.state.epoch
        engine.state.max_epochs = max_epochs
        self.logger.info(f"resumed from {path} at epoch {engine.state.epoch} (max_epochs {max_epochs})")
        if max_epochs is not None and engine.state.epoch >= max_epochs:
            self.logger.info(f"{path} already holds {engine.state.epoch} epochs >= max_epochs; nothing to train.")
            engine.terminate()

    def _count_iteration(self, engine: Engine) -> None:
        self._trained_iterations += 1

    def _on_exception(self, engine: Engine, e: Exception) -> None:
        # only save what this run has trained: a failure before the first completed iteration (bad data, wrong
        # settings) must not leave a checkpoint that a corrected rerun would then try to resume from
        if self._trained_iterations > 0:
            self.save(engine)
        raise e
