"""Atomic training checkpoints with honest resumes: weights-only files, recorded settings, no non-finite weights."""

from __future__ import annotations

import copy
import logging
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint

from medsyn_monai.handlers.differential_privacy import PrivacyBudgetError
from medsyn_monai.utils.cli import FALSE_STRINGS, TRUE_STRINGS
from medsyn_monai.utils.distributed import barrier, is_main_process
from medsyn_monai.utils.enums import ResumeMode
from medsyn_monai.utils.io import atomic_write, json_ready, load_torch_file, remove_stale_temp_files
from medsyn_monai.utils.model_info import MODEL_INFO_NAME, save_model_info

__all__ = ["AtomicCheckpoint", "NonFiniteWeightsError", "SettingsMismatchError", "parse_resume", "settings_differences"]

#: the checkpoint entry that records the run's settings (plain types only)
SETTINGS_KEY = "settings"
#: folder of ``run_dir`` that ``resume=False`` moves a previous run's outputs into
PREVIOUS_RUNS = "previous_runs"
#: what an LR scheduler's ``state_dict`` counts (restored on resume); the rest is configuration, kept from the run
SCHEDULER_COUNTERS = frozenset({"last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "_is_initial",
                                "lr_lambdas"})  # fmt: skip


def parse_resume(value: bool | str | ResumeMode) -> ResumeMode:
    """:class:`~medsyn_monai.utils.enums.ResumeMode` of a ``resume`` value: ``true``/``auto``, ``override``,
    ``false``/``restart`` (command-line spellings of :func:`~medsyn_monai.utils.as_bool` included).

    Example:
        >>> [str(parse_resume(v)) for v in ("no", True, "override")]
        ['restart', 'auto', 'override']
    """
    text = str(value).strip().lower()
    if text in TRUE_STRINGS or text == ResumeMode.AUTO:
        return ResumeMode.AUTO
    if text in FALSE_STRINGS or text == ResumeMode.RESTART:
        return ResumeMode.RESTART
    if text == ResumeMode.OVERRIDE:
        return ResumeMode.OVERRIDE
    raise ValueError(f"resume must be true (or auto), override or false (or restart), got {value!r}.")


class SettingsMismatchError(RuntimeError):
    """The checkpoint to resume was written with other settings than the current run's."""


class NonFiniteWeightsError(RuntimeError):
    """The weights to save hold NaN or infinite values: nothing is written, the previous checkpoint stays."""


def _flatten(settings: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(settings, Mapping):
        out: dict[str, Any] = {}
        for key, value in settings.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: settings}


def settings_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"key: recorded -> current"`` for every (nested, dotted) setting that differs.

    Example:
        >>> settings_differences({"lr": 0.1, "net": {"ch": [8, 16]}}, {"lr": 0.2, "net": {"ch": (8, 16)}})
        ['lr: 0.1 -> 0.2']
    """
    old, new = _flatten(json_ready(recorded)), _flatten(json_ready(current))
    missing = object()

    def shown(values: dict[str, Any], key: str, absent: str) -> str:
        return repr(values[key]) if key in values else absent  # the placeholder unquoted, values as repr

    return [
        f"{key}: {shown(old, key, '(not recorded)')} -> {shown(new, key, '(not set)')}"
        for key in sorted(set(old) | set(new))
        if old.get(key, missing) != new.get(key, missing)
    ]


def _non_finite(state: Any, where: str = "") -> list[str]:
    """Names of the floating tensors in a (nested) state dict that hold NaN or infinite values."""
    if isinstance(state, torch.Tensor):
        return [where or "tensor"] if state.is_floating_point() and not bool(torch.isfinite(state).all()) else []
    if isinstance(state, Mapping):
        return [name for k, v in state.items() for name in _non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(state, (list, tuple)):
        return [name for i, v in enumerate(state) for name in _non_finite(v, f"{where}[{i}]")]
    if isinstance(state, float) and not math.isfinite(state):
        return [where]
    return []


class AtomicCheckpoint:
    """Save the whole training state atomically and resume from it, honestly.

    Written into ``save_dir``, each to a temporary file first, flushed to disk and renamed into place
    (:func:`~medsyn_monai.utils.atomic_write`), so a killed run never leaves a half-written file:

    - ``checkpoint.pt``: the ``state_dict`` of every object of ``save_dict`` (network, EMA network, optimizer, LR
      scheduler, the trainer's epoch and iteration) and the run's ``settings``; tensors and plain types only, so it
      loads with ``torch.load(weights_only=True)`` and a crafted file is refused
      (:func:`~medsyn_monai.utils.load_torch_file`) instead of running code;
    - ``model.pt``: the ``state_dict`` of ``save_dict[model_key]`` alone (by default the EMA weights), for inference;
    - ``model_info.json`` (``model_info``): written with the first checkpoint, never before, so a run that fails
      early leaves the ``model_info.json`` of an earlier run untouched.

    Weights with NaN or infinite values are never written: :class:`NonFiniteWeightsError` stops the run and the
    previous ``checkpoint.pt`` / ``model.pt`` stay as they were.

    Resuming (:meth:`prepare`, called by bundle configs in ``initialize`` after the data were checked and before
    anything is written; otherwise at ``Events.STARTED``): stale temporary files of a killed save are removed; an
    existing ``checkpoint.pt`` is read (weights-only) and its recorded settings compared with ``settings``:

    - ``resume="auto"`` (``True``): equal settings resume, training continues from the saved epoch up to the
      *current* ``max_epochs`` (a finished run can be extended); differing settings stop with
      :class:`SettingsMismatchError` listing every difference;
    - ``resume="override"``: resume anyway with the current settings (the differences are logged): the weights,
      optimizer state and step counts come from the checkpoint, the optimizers' hyper-parameters (learning rate,
      weight decay, ...) and the LR schedulers' base rates from the current run; a network that no longer fits the
      weights still stops with an error naming the file;
    - ``resume=False``: start over; ``save_dir`` and ``run_outputs`` (TensorBoard folder, CSV log, sample grids) are
      moved to ``run_dir/previous_runs/<UTC time>/``, never deleted.

    ``save_dir`` holding ``model.pt`` or ``model_info.json`` of an earlier run but no ``checkpoint.pt`` is not
    overwritten: the run stops unless ``resume=False`` moves them aside. After :meth:`prepare`,
    :attr:`resume_epoch` / :attr:`resume_iteration` tell where training continues and :attr:`purge_step` is the
    TensorBoard ``purge_step`` that hides the events a killed run wrote after its last checkpoint.

    In multi-process training (``torchrun``) only the main process (rank 0) writes, moves or removes files; every
    process reads the checkpoint to resume from, after the main process has finished preparing ``save_dir``.

    With ``snapshot_epochs``, ``model_epoch_XXXX.pt`` (the ``model_key`` weights) is also kept after those epochs.
    Checkpoints are written every ``save_interval`` epochs, when training completes and, with ``save_on_exception``,
    when it fails after at least one completed iteration (the error is re-raised), except when the loss became NaN
    or infinite (``FloatingPointError``, e.g. the trainer's ``NonFiniteLossError``): the diverged state is not kept
    and the last checkpoint stays.

    Args:
        save_dir: folder for the checkpoint files (created at the first save).
        save_dict: name -> object with ``state_dict``/``load_state_dict``; ``None`` entries are left out.
        save_interval: save every this many epochs (0 disables periodic saving).
        engine_key: name under which the engine is added to ``save_dict`` at ``attach`` (its epoch and iteration make
            resuming possible); ``None`` to leave it out.
        model_key: entry of ``save_dict`` written alone to ``model.pt`` (``None``: no ``model.pt``).
        resume: ``"auto"``/``True``, ``"override"`` or ``False`` (see above; command-line spellings accepted).
        save_on_exception: also save when training raises an exception.
        checkpoint_name: file name of the full checkpoint.
        model_name: file name of the inference weights.
        snapshot_epochs: epochs after which ``model_epoch_XXXX.pt`` is written too.
        settings: the run's settings (plain types: network, schedule, optimizer and learning rate, batch size, seed,
            image size, data fingerprint, ...), recorded in every checkpoint and compared on resume.
        model_info: entries of ``model_info.json``, written into ``save_dir`` with the first checkpoint.
        live_info: further ``model_info.json`` entries as callables (``None`` values are left out), called at every
            checkpoint, the file then rewritten (e.g. ``DifferentialPrivacy.summary``: the privacy spent so far).
        run_dir: the run folder (``output_dir``); ``resume=False`` moves outputs to ``run_dir/previous_runs``.
            Default: the parent of ``save_dir``.
        run_outputs: further outputs of this run that ``resume=False`` moves aside with ``save_dir``.

    Example:
        >>> import tempfile, torch
        >>> from ignite.engine import Engine
        >>> net = torch.nn.Linear(2, 2)
        >>> engine = Engine(lambda e, b: None)
        >>> d = Path(tempfile.mkdtemp())
        >>> AtomicCheckpoint(d, {"model": net}, model_key="model", settings={"lr": 0.1}, model_info={"n": 2}).attach(
        ...     engine)
        >>> _ = engine.run([0, 1], max_epochs=2)
        >>> sorted(p.name for p in d.iterdir()), load_torch_file(d / "checkpoint.pt")["settings"]
        (['checkpoint.pt', 'model.pt', 'model_info.json'], {'lr': 0.1})
    """

    def __init__(
        self,
        save_dir: str | Path,
        save_dict: Mapping[str, Any],
        save_interval: int = 1,
        engine_key: str | None = "trainer",
        model_key: str | None = "ema",
        resume: bool | str | ResumeMode = True,
        save_on_exception: bool = True,
        checkpoint_name: str = "checkpoint.pt",
        model_name: str = "model.pt",
        snapshot_epochs: Sequence[int] | None = None,
        settings: Mapping[str, Any] | None = None,
        model_info: Mapping[str, Any] | None = None,
        live_info: Mapping[str, Callable[[], Any] | None] | None = None,
        run_dir: str | Path | None = None,
        run_outputs: Sequence[str | Path] = (),
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
        if SETTINGS_KEY in save_dict:
            raise ValueError(f"{SETTINGS_KEY!r} is reserved for the run's settings; rename that save_dict entry.")
        self.save_dir = Path(save_dir)
        self.save_dict = dict(save_dict)
        self.save_interval = save_interval
        self.engine_key = engine_key
        self.model_key = model_key
        self.resume = parse_resume(resume)
        self.save_on_exception = save_on_exception
        self.checkpoint_name = checkpoint_name
        self.model_name = model_name
        self.snapshot_epochs = snapshots
        self.settings: dict[str, Any] = json_ready(dict(settings or {}))
        self.model_info = None if model_info is None else dict(model_info)
        self.live_info = {k: fn for k, fn in (live_info or {}).items() if fn is not None}
        not_callable = [k for k, fn in self.live_info.items() if not callable(fn)]
        if not_callable:
            raise ValueError(f"live_info entries must be callables (or None), got {not_callable}.")
        self.run_dir = Path(run_dir) if run_dir is not None else self.save_dir.parent
        self.run_outputs = [Path(p) for p in run_outputs]
        self.logger = logging.getLogger(__name__)
        self.resumed_from_epoch: int | None = None
        self.resume_epoch = 0
        self.resume_iteration = 0
        self.moved_to: Path | None = None
        self._prepared = False
        self._to_resume: dict[str, Any] | None = None
        self._saved_iteration: int | None = None
        self._info_written = False
        self._trained_iterations = 0  # iterations completed by this run (not counting resumed ones)

    @property
    def checkpoint_path(self) -> Path:
        return self.save_dir / self.checkpoint_name

    @property
    def model_path(self) -> Path:
        return self.save_dir / self.model_name

    @property
    def purge_step(self) -> int:
        """TensorBoard ``purge_step``: events from this step on, written by a run after its last checkpoint, are
        hidden (``SummaryWriter(purge_step=...)``); 0 for a run that starts from scratch."""
        self.prepare()
        return self.resume_iteration + 1 if self._to_resume is not None else 0

    # ------------------------------------------------------------------ before training

    def prepare(self) -> AtomicCheckpoint:
        """Check what ``save_dir`` holds and decide how the run starts (see the class docstring); returns ``self``.

        Raises:
            SettingsMismatchError: the checkpoint's settings differ (``resume="auto"``), or ``save_dir`` holds the
                weights of an earlier run but no checkpoint.
            UnsafeCheckpointError: ``checkpoint.pt`` needs code execution to load (refused).
            ValueError: ``checkpoint.pt`` is not a readable PyTorch file.
        """
        if self._prepared:
            return self
        if is_main_process():  # the one process that changes files; the others wait for it
            remove_stale_temp_files(self.save_dir)
            if self.resume == ResumeMode.RESTART:
                self._move_previous_run()
        barrier()
        if self.resume == ResumeMode.RESTART:
            pass
        elif self.checkpoint_path.is_file():
            self._read_checkpoint()
        else:
            leftovers = [p.name for p in (self.model_path, self.save_dir / MODEL_INFO_NAME) if p.is_file()]
            if leftovers:
                raise SettingsMismatchError(
                    f"{self.save_dir} holds {', '.join(leftovers)} of an earlier run but no {self.checkpoint_name} "
                    "to resume from; they are not overwritten. Use --resume false to move them aside "
                    f"(into {self.run_dir / PREVIOUS_RUNS}) and start over, or another output_dir."
                )
        self._prepared = True
        return self

    def _read_checkpoint(self) -> None:
        checkpoint = load_torch_file(self.checkpoint_path, "checkpoint")
        if not isinstance(checkpoint, dict):
            raise ValueError(f"{self.checkpoint_path} is not a training checkpoint (a dict of state dicts).")
        recorded = checkpoint.get(SETTINGS_KEY)
        if recorded is None:
            self.logger.warning(
                f"{self.checkpoint_path} records no settings (an older release wrote it): resuming without checking "
                "that it was trained with the current settings."
            )
        else:
            differences = settings_differences(recorded, self.settings)
            if differences and self.resume == ResumeMode.AUTO:
                listing = "\n  ".join(differences)
                raise SettingsMismatchError(
                    f"cannot resume from {self.checkpoint_path}: it was trained with other settings "
                    f"(recorded -> now):\n  {listing}\nRun with the recorded settings to continue it, "
                    "--resume override to continue with the new settings, --resume false to start over (the "
                    f"previous run is moved into {self.run_dir / PREVIOUS_RUNS}), or use another output_dir."
                )
            if differences:
                changes = "; ".join(differences)
                self.logger.warning(f"resuming {self.checkpoint_path} with new settings (--resume override): {changes}")
        trainer_state = checkpoint.get(self.engine_key) if self.engine_key is not None else None
        if isinstance(trainer_state, Mapping):
            # an ignite engine's state_dict holds "iteration" and "epoch_length" (its epoch follows from them) or,
            # without an iteration count, "epoch"
            self.resume_iteration = int(trainer_state.get("iteration", 0))
            length = trainer_state.get("epoch_length")
            if "epoch" in trainer_state:
                self.resume_epoch = int(trainer_state["epoch"])
            elif length:
                self.resume_epoch = self.resume_iteration // int(length)
        self._to_resume = checkpoint

    def _move_previous_run(self) -> None:
        outputs = [p for p in [self.save_dir, *self.run_outputs] if p.exists()]
        if not outputs:
            return
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        target_root = self.run_dir / PREVIOUS_RUNS / stamp
        for path in outputs:
            try:
                relative = path.resolve().relative_to(self.run_dir.resolve())
            except ValueError:
                relative = Path(path.name)
            target = target_root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(target))
        self.moved_to = target_root
        self.logger.warning(f"--resume false: the previous run's outputs were moved to {target_root}")

    # ------------------------------------------------------------------ engine events

    def attach(self, engine: Engine) -> None:
        if self.engine_key is not None:
            self.save_dict[self.engine_key] = engine
        engine.add_event_handler(Events.STARTED, self.load)
        if self.save_interval > 0:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), self.save)
        engine.add_event_handler(Events.COMPLETED, self.save)
        if self.snapshot_epochs:
            engine.add_event_handler(Events.EPOCH_COMPLETED, self._snapshot)
        if self.save_on_exception:
            engine.add_event_handler(Events.ITERATION_COMPLETED, self._count_iteration)
            engine.add_event_handler(Events.EXCEPTION_RAISED, self._on_exception)

    def load(self, engine: Engine) -> None:
        """Restore every object of ``save_dict`` from the checkpoint :meth:`prepare` chose to resume (if any)."""
        self.prepare()
        checkpoint, self._to_resume = self._to_resume, None
        if checkpoint is None:
            return
        max_epochs, epoch_length = engine.state.max_epochs, engine.state.epoch_length
        current = self._hyperparameters()
        try:
            Checkpoint.load_objects(to_load=self.save_dict, checkpoint=checkpoint)
        except PrivacyBudgetError:
            raise  # says what to do itself
        except (RuntimeError, KeyError, ValueError) as e:
            raise RuntimeError(
                f"cannot resume from {self.checkpoint_path}: it does not match the current configuration ({e}). "
                "Use another output_dir, or --resume false to move that run aside and start from scratch."
            ) from e
        self._restore_hyperparameters(current)
        if epoch_length and engine.state.epoch_length != epoch_length:
            # the checkpoint's epochs had another number of iterations (batch size or number of processes changed,
            # --resume override): this run's epochs, from the start of the epoch after the saved one
            self.logger.warning(
                f"{self.checkpoint_path}: its epochs had {engine.state.epoch_length} iterations, this run's have "
                f"{epoch_length}; training goes on from the start of epoch {engine.state.epoch + 1} (iteration "
                f"{engine.state.epoch * epoch_length}; TensorBoard steps follow the new count)"
            )
            engine.state.epoch_length = epoch_length
            engine.state.iteration = engine.state.epoch * epoch_length
        self.resumed_from_epoch = engine.state.epoch
        self._saved_iteration = engine.state.iteration  # the checkpoint on disk holds exactly this state
        self._info_written = (self.save_dir / MODEL_INFO_NAME).is_file()
        engine.state.max_epochs = max_epochs
        self.logger.info(f"resumed from {self.checkpoint_path} at epoch {engine.state.epoch} (max_epochs {max_epochs})")
        if max_epochs is not None and engine.state.epoch >= max_epochs:
            self.logger.info(
                f"{self.checkpoint_path} already holds {engine.state.epoch} epochs >= max_epochs; nothing to train."
            )
            engine.terminate()

    def _hyperparameters(self) -> dict[str, Any]:
        """What a resume keeps of the current run instead of the checkpoint's: each LR scheduler's configuration
        (e.g. ``t_total``, ``warmup_steps``, ``end_lr`` of ``WarmupCosineSchedule``, which a longer ``max_epochs``
        changes: the checkpoint's would end the schedule at the old length), and with ``resume="override"`` the
        optimizers' hyper-parameters (learning rate, weight decay, ...) and the schedulers' base rates too."""
        override = self.resume == ResumeMode.OVERRIDE
        kept: dict[str, Any] = {}
        for name, obj in self.save_dict.items():
            if isinstance(obj, torch.optim.Optimizer) and override:
                kept[name] = [{k: v for k, v in g.items() if k != "params"} for g in obj.param_groups]
            elif isinstance(obj, torch.optim.lr_scheduler.LRScheduler):
                skip = SCHEDULER_COUNTERS if override else SCHEDULER_COUNTERS | {"base_lrs"}
                kept[name] = {k: copy.deepcopy(v) for k, v in obj.state_dict().items() if k not in skip}
        return kept

    def _restore_hyperparameters(self, kept: Mapping[str, Any]) -> None:
        optimizers = [name for name in kept if isinstance(self.save_dict[name], torch.optim.Optimizer)]
        for name in optimizers:
            for group, settings in zip(self.save_dict[name].param_groups, kept[name], strict=True):
                group.update(settings)
        for name in (n for n in kept if n not in optimizers):  # after the optimizers: they set the current rate
            scheduler = self.save_dict[name]
            scheduler.__dict__.update(kept[name])
            if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
                # a closed-form schedule: the rate of the resumed step from the current configuration (else the
                # first step would use the checkpoint's rate, or with override the new optimizer's initial one);
                # chained schedulers (StepLR, ...) go on from the checkpoint's rate
                scheduler._get_lr_called_within_step = True  # get_lr() outside step() is deliberate here
                try:
                    lrs = list(scheduler.get_lr())
                finally:
                    scheduler._get_lr_called_within_step = False
                for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
                    group["lr"] = lr
                scheduler._last_lr = lrs

    def save(self, engine: Engine | None = None) -> None:
        """Write ``model_info.json`` (first time), ``checkpoint.pt`` and ``model.pt`` atomically (once per iteration).

        Raises:
            NonFiniteWeightsError: a weight or optimizer state holds NaN/inf; nothing is written.
        """
        iteration = engine.state.iteration if engine is not None else None
        if iteration is not None and iteration == self._saved_iteration:
            return  # e.g. COMPLETED right after the last epoch's periodic save
        if not is_main_process():  # multi-process training: rank 0 writes (every rank holds the same weights)
            self._saved_iteration = iteration
            return
        state: dict[str, Any] = {name: obj.state_dict() for name, obj in self.save_dict.items()}
        bad = [name for name in _non_finite({k: v for k, v in state.items() if k != self.engine_key})]
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise NonFiniteWeightsError(
                f"not saving epoch {engine.state.epoch if engine is not None else '?'}: NaN or infinite values in "
                f"{shown}; {self.checkpoint_path} and {self.model_path} keep the last good state. Training diverged: "
                "lower the learning rate (--learning_rate), keep gradient clipping (--max_grad_norm), or check the "
                "data for extreme values."
            )
        state[SETTINGS_KEY] = self.settings
        if self.model_info is not None and (self.live_info or not self._info_written):
            live = {k: fn() for k, fn in self.live_info.items()}  # e.g. the privacy spent so far
            save_model_info(self.save_dir, **{**self.model_info, **live})
            self._info_written = True
        atomic_write(self.checkpoint_path, lambda tmp: torch.save(state, tmp))
        model_key = self.model_key
        if model_key is not None:
            atomic_write(self.model_path, lambda tmp: torch.save(state[model_key], tmp))
        self._saved_iteration = iteration
        epoch = engine.state.epoch if engine is not None else "?"
        self.logger.info(f"saved checkpoint of epoch {epoch} to {self.checkpoint_path}")

    def snapshot_path(self, epoch: int) -> Path:
        """Path of the weights kept after ``epoch`` (``snapshot_epochs``)."""
        return self.save_dir / f"{Path(self.model_name).stem}_epoch_{int(epoch):04d}{Path(self.model_name).suffix}"

    def _snapshot(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        if epoch not in self.snapshot_epochs or not is_main_process():
            return
        model_key = self.model_key
        assert model_key is not None  # the constructor requires model_key with snapshot_epochs
        weights = self.save_dict[model_key].state_dict()
        if _non_finite(weights):
            self.logger.error(f"not keeping the weights of epoch {epoch}: they hold NaN or infinite values.")
            return
        path = self.snapshot_path(epoch)
        atomic_write(path, lambda tmp: torch.save(weights, tmp))
        self.logger.info(f"kept the weights of epoch {epoch} as {path}")

    def _count_iteration(self, engine: Engine) -> None:
        self._trained_iterations += 1

    def _on_exception(self, engine: Engine, e: Exception) -> None:
        # only save what this run has trained: a failure before the first completed iteration (bad data, wrong
        # settings) must not leave a checkpoint that a corrected rerun would then try to resume from; and never the
        # state of a run whose loss became NaN/inf (the trainer's NonFiniteLossError, a FloatingPointError): those
        # weights diverged, and the last good checkpoint is what a rerun with a lower learning rate must resume
        if self._trained_iterations > 0 and not isinstance(e, (NonFiniteWeightsError, FloatingPointError)):
            try:
                self.save(engine)
            except NonFiniteWeightsError as bad:
                self.logger.error(str(bad))
        raise e
