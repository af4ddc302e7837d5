"""Per-epoch training statistics: console log, TensorBoard scalars and a CSV table."""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from torch.optim import Optimizer

from medsyn_monai.utils.distributed import all_reduce_max, all_reduce_sum, get_world_size, is_main_process
from medsyn_monai.utils.io import atomic_write

__all__ = ["TrainingStatsHandler"]


class TrainingStatsHandler:
    """Log the loss and learning rate: per iteration to TensorBoard, per epoch to the console, TensorBoard and CSV.

    Per iteration (every ``iteration_interval``): ``train/loss`` and ``train/lr``. Per epoch: the mean loss
    (``train/epoch_loss``), learning rate, wall time and images per second, logged to the console and appended to
    ``csv_path`` (columns ``epoch,iteration,mean_loss,lr,epoch_seconds,images_per_second``) so that a run can be
    inspected without TensorBoard. Every TensorBoard scalar uses the iteration as its step, so that a resumed run's
    ``SummaryWriter(purge_step=...)`` (:attr:`~medsyn_monai.handlers.AtomicCheckpoint.purge_step`) hides all that a
    killed run logged after its last checkpoint; likewise, when this run trains its first epoch ``e``, rows of
    epochs ``>= e`` (logged by a run that was killed before saving them) are dropped from ``csv_path``, so every
    epoch appears once. Batches with a non-finite loss (skipped by the trainer) are left out of the means. A run
    terminated inside an epoch (e.g. by :class:`~medsyn_monai.handlers.TimeBudget`) logs that partial epoch too.
    Expects ``engine.state.output["loss"]`` (MONAI trainers) and the batch size from
    ``engine.state.output["image"]``. Further scalar entries of the output named in ``extra_keys`` (by default the
    engine's ``loss_components`` and ``output_stats``, e.g. ``"loss_noise"``, ``"loss_align"`` of
    :class:`~medsyn_monai.engines.DiffusionTrainer`'s extended objective and its alignment statistics
    ``"align_proj_std"``, ``"align_target_std"``) are logged the same way: ``train/<key>`` per iteration,
    ``train/epoch_<key>`` per epoch, and a ``mean_<key>`` CSV column (NaN for an epoch in which the output never held
    the key). When a resumed run logs columns that the existing ``csv_path`` lacks (or the other way round), the file
    is rewritten with all columns, ``nan`` where a row has no value.

    In multi-process training (``torchrun``) the epoch means are over the batches of every process and the images
    per second are those of all processes together (the global throughput); only the main process logs and writes.
    Per-iteration TensorBoard scalars are the main process's own batch.

    Args:
        optimizer: optimizer whose first parameter group's ``lr`` is logged.
        summary_writer: a ``torch.utils.tensorboard.SummaryWriter`` or ``None``.
        csv_path: CSV file for the per-epoch table (appended to, so resumed runs keep their history) or ``None``.
        iteration_interval: iterations between TensorBoard iteration scalars.
        logger_name: name of the console logger.
        extra_keys: further scalar entries of ``engine.state.output`` to log (``None``: the ``loss_components`` and
            ``output_stats`` of the engine it is attached to, if it has any).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        summary_writer: Any | None = None,
        csv_path: str | Path | None = None,
        iteration_interval: int = 10,
        logger_name: str = "medsyn_monai.train",
        extra_keys: Sequence[str] | None = None,
    ) -> None:
        if iteration_interval < 1:
            raise ValueError(f"iteration_interval must be >= 1, got {iteration_interval}.")
        self.optimizer = optimizer
        self.summary_writer = summary_writer
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.iteration_interval = iteration_interval
        self.logger = logging.getLogger(logger_name)
        self._default_keys = extra_keys is None
        self.extra_keys: list[str] = [str(k) for k in extra_keys or ()]
        self.history: list[dict[str, float]] = []
        self._extra_sums: dict[str, float] = {}
        self._extra_counts: dict[str, int] = {}
        self._loss_sum = 0.0
        self._count = 0
        self._images = 0
        self._t0 = 0.0
        self._logged_epoch: int | None = None
        self._csv_checked = False

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def attach(self, engine: Engine) -> None:
        if self._default_keys:
            keys = [*getattr(engine, "loss_components", []), *getattr(engine, "output_stats", [])]
            self.extra_keys = list(dict.fromkeys(str(k) for k in keys))
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        engine.add_event_handler(Events.TERMINATE, self._terminated)

    def _terminated(self, engine: Engine) -> None:
        # a run stopped inside an epoch (e.g. by a time budget) still logs the iterations of that partial epoch
        if self._count > 0 and self._logged_epoch != engine.state.epoch:
            self._epoch_completed(engine)

    def _epoch_started(self, engine: Engine) -> None:
        if not self._csv_checked and is_main_process():
            self._csv_checked = True
            self._drop_rows_from(engine.state.epoch)
        self._loss_sum, self._count, self._images, self._t0 = 0.0, 0, 0, time.perf_counter()
        self._extra_sums = {k: 0.0 for k in self.extra_keys}
        self._extra_counts = {k: 0 for k in self.extra_keys}

    def _iteration_completed(self, engine: Engine) -> None:
        output: Any = engine.state.output  # the trainer's output dictionary (ignite types it loosely)
        loss_value = output["loss"]
        loss = float(loss_value.detach()) if hasattr(loss_value, "detach") else float(loss_value)
        if not math.isfinite(loss):  # a batch the trainer skipped (max_nonfinite_batches): not part of the mean
            return
        self._loss_sum += loss
        self._count += 1
        image = output.get("image") if isinstance(output, dict) else None
        self._images += int(image.shape[0]) if image is not None else 0
        extras: dict[str, float] = {}
        for key in self.extra_keys:
            value = output.get(key) if isinstance(output, dict) else None
            if value is not None:
                extras[key] = float(value.detach()) if hasattr(value, "detach") else float(value)
                self._extra_sums[key] += extras[key]
                self._extra_counts[key] += 1
        if (
            self.summary_writer is not None
            and engine.state.iteration % self.iteration_interval == 0
            and is_main_process()
        ):
            self.summary_writer.add_scalar("train/loss", loss, engine.state.iteration)
            self.summary_writer.add_scalar("train/lr", self.lr, engine.state.iteration)
            for key, value in extras.items():
                self.summary_writer.add_scalar(f"train/{key}", value, engine.state.iteration)

    def _epoch_completed(self, engine: Engine) -> None:
        self._logged_epoch = engine.state.epoch
        seconds = time.perf_counter() - self._t0
        loss_sum, count, images = float(self._loss_sum), float(self._count), float(self._images)
        extra_sums = [self._extra_sums.get(k, 0.0) for k in self.extra_keys]
        extra_counts = [float(self._extra_counts.get(k, 0)) for k in self.extra_keys]
        if get_world_size() > 1:  # every process's batches (collectives: each process takes part)
            totals = all_reduce_sum([loss_sum, count, images, *extra_sums, *extra_counts])
            loss_sum, count, images = totals[:3]
            n = len(self.extra_keys)
            extra_sums, extra_counts = totals[3 : 3 + n], totals[3 + n :]
            seconds = all_reduce_max([seconds])[0]
        row = {
            "epoch": engine.state.epoch,
            "iteration": engine.state.iteration,
            "mean_loss": loss_sum / max(count, 1.0),
            "lr": self.lr,
            "epoch_seconds": seconds,
            "images_per_second": images / seconds if seconds > 0 else 0.0,
        }
        for key, total, n_values in zip(self.extra_keys, extra_sums, extra_counts, strict=True):
            row[f"mean_{key}"] = total / n_values if n_values else math.nan
        self.history.append(row)
        if not is_main_process():
            return
        extras = "".join(f"  {key} {row[f'mean_{key}']:.4f}" for key in self.extra_keys)
        self.logger.info(
            f"epoch {row['epoch']}/{engine.state.max_epochs}  loss {row['mean_loss']:.4f}{extras}  lr {row['lr']:.2e}  "
            f"{row['epoch_seconds']:.1f} s  {row['images_per_second']:.0f} img/s"
        )
        if self.summary_writer is not None:
            step = row["iteration"]
            self.summary_writer.add_scalar("train/epoch_loss", row["mean_loss"], step)
            for key in self.extra_keys:
                if not math.isnan(row[f"mean_{key}"]):
                    self.summary_writer.add_scalar(f"train/epoch_{key}", row[f"mean_{key}"], step)
            self.summary_writer.add_scalar("train/images_per_second", row["images_per_second"], step)
            self.summary_writer.flush()
        if self.csv_path is not None:
            self._append_row(self.csv_path, row)

    @staticmethod
    def _append_row(path: Path, row: dict[str, Any]) -> None:
        """Append ``row`` to the CSV ``path``; a file with other columns (a run resumed with other logged keys) is
        rewritten with all columns first, ``nan`` where a row has no value."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fields = list(row)
        if path.is_file() and path.stat().st_size > 0:
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                old_fields = list(reader.fieldnames or [])
                added = [k for k in fields if k not in old_fields]
                rows = list(reader) if added else []
            if old_fields:
                fields = old_fields + added
            if old_fields and added:

                def write(tmp: str) -> None:
                    with open(tmp, "w", newline="") as f:
                        writer = csv.DictWriter(f, fieldnames=fields, restval="nan", extrasaction="ignore")
                        writer.writeheader()
                        writer.writerows(rows)

                atomic_write(path, write)
        new = not path.is_file() or path.stat().st_size == 0
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="nan")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _drop_rows_from(self, epoch: int) -> None:
        """Rewrite ``csv_path`` without the rows of epochs ``>= epoch`` (and any line cut short by a kill)."""
        if self.csv_path is None or not self.csv_path.is_file():
            return
        with open(self.csv_path, newline="") as f:
            reader = csv.DictReader(f)
            fields = list(reader.fieldnames or [])
            rows = list(reader)

        def keep(row: dict[str, Any]) -> bool:
            if None in row or any(row.get(k) in (None, "") for k in fields):  # a partly written line
                return False
            try:
                return int(row["epoch"]) < epoch
            except (KeyError, ValueError):
                return False

        kept = [r for r in rows if keep(r)]
        if len(kept) == len(rows):
            return

        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(kept)

        atomic_write(self.csv_path, write)
        dropped = len(rows) - len(kept)
        self.logger.info(f"{self.csv_path}: dropped {dropped} row(s) of epochs >= {epoch} (trained again)")
