"""Per-epoch training statistics: console log, TensorBoard scalars and a CSV table."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from torch.optim import Optimizer

__all__ = ["TrainingStatsHandler"]


class TrainingStatsHandler:
    """Log the loss and learning rate: per iteration to TensorBoard, per epoch to the console, TensorBoard and CSV.

    Per iteration (every ``iteration_interval``): ``train/loss`` and ``train/lr``. Per epoch: the mean loss
    (``train/epoch_loss``), learning rate, wall time and images per second, logged to the console and appended to
    ``csv_path`` (columns ``epoch,iteration,mean_loss,lr,epoch_seconds,images_per_second``) so that a run can be
    inspected without TensorBoard. Expects ``engine.state.output["loss"]`` (MONAI trainers) and the batch size from
    ``engine.state.output["image"]``.

    Args:
        optimizer: optimizer whose first parameter group's ``lr`` is logged.
        summary_writer: a ``torch.utils.tensorboard.SummaryWriter`` or ``None``.
        csv_path: CSV file for the per-epoch table (appended to, so resumed runs keep their history) or ``None``.
        iteration_interval: iterations between TensorBoard iteration scalars.
        logger_name: name of the console logger.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        summary_writer: Any | None = None,
        csv_path: str | Path | None = None,
        iteration_interval: int = 10,
        logger_name: str = "medsyn_monai.train",
    ) -> None:
        if iteration_interval < 1:
            raise ValueError(f"iteration_interval must be >= 1, got {iteration_interval}.")
        self.optimizer = optimizer
        self.summary_writer = summary_writer
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.iteration_interval = iteration_interval
        self.logger = logging.getLogger(logger_name)
        self.history: list[dict[str, float]] = []
        self._loss_sum = 0.0
        self._count = 0
        self._images = 0
        self._t0 = 0.0

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    def _epoch_started(self, engine: Engine) -> None:
        self._loss_sum, self._count, self._images, self._t0 = 0.0, 0, 0, time.perf_counter()

    def _iteration_completed(self, engine: Engine) -> None:
        output = engine.state.output
        loss_value = output["loss"]  # type: ignore[index]
        loss = float(loss_value.detach()) if hasattr(loss_value, "detach") else float(loss_value)
        self._loss_sum += loss
        self._count += 1
        image = output.get("image") if isinstance(output, dict) else None
        self._images += int(image.shape[0]) if image is not None else 0
        if self.summary_writer is not None and engine.state.iteration % self.iteration_interval == 0:
            self.summary_writer.add_scalar("train/loss", loss, engine.state.iteration)
            self.summary_writer.add_scalar("train/lr", self.lr, engine.state.iteration)

    def _epoch_completed(self, engine: Engine) -> None:
        seconds = time.perf_counter() - self._t0
        row = {
            "epoch": engine.state.epoch,
            "iteration": engine.state.iteration,
            "mean_loss": self._loss_sum / max(self._count, 1),
            "lr": self.lr,
            "epoch_seconds": seconds,
            "images_per_second": self._images / seconds if seconds > 0 else 0.0,
        }
        self.history.append(row)
        self.logger.info(
            f"epoch {row['epoch']}/{engine.state.max_epochs}  loss {row['mean_loss']:.4f}  lr {row['lr']:.2e}  "
            f"{row['epoch_seconds']:.1f} s  {row['images_per_second']:.0f} img/s"
        )
        if self.summary_writer is not None:
            self.summary_writer.add_scalar("train/epoch_loss", row["mean_loss"], row["epoch"])
            self.summary_writer.add_scalar("train/images_per_second", row["images_per_second"], row["epoch"])
            self.summary_writer.flush()
        if self.csv_path is not None:
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.csv_path.exists()
            with open(self.csv_path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    writer.writeheader()
                writer.writerow(row)
