"""Ignite evaluation engine for classifiers: a MONAI SupervisedEvaluator that writes a full classification report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedEvaluator
from monai.utils import CommonKeys, convert_to_tensor

from medsyn_monai.engines.prepare_batch import ExpertPrepareBatch
from medsyn_monai.metrics.classification import classification_report
from medsyn_monai.utils.io import write_json
from medsyn_monai.visualize.confusion_matrix import save_confusion_matrix_png

__all__ = ["ClassificationEvaluator", "REPORT_SCALARS"]

# scalar entries of a classification report copied into ``engine.state.metrics``
REPORT_SCALARS = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc")


def _plain(x: Any) -> torch.Tensor:
    return convert_to_tensor(x, track_meta=False)


class ClassificationEvaluator(SupervisedEvaluator):
    """A :class:`~monai.engines.SupervisedEvaluator` that computes a full classification report after each run.

    The logits of every batch are gathered; at the end of the run
    :func:`~medsyn_monai.metrics.classification.classification_report` (with softmax scores for the ROC AUC) is
    stored in :attr:`report`, its scalar entries (``accuracy``, ``balanced_accuracy``, ``precision_macro``,
    ``recall_macro``, ``f1_macro``, ``roc_auc``) are put into ``engine.state.metrics`` *before* the ``val_handlers``
    run (so e.g. :class:`BestCheckpointHandler` and MONAI's ``StatsHandler`` see them), and, with ``output_dir``,
    ``<prefix>metrics.json`` and ``<prefix>confusion_matrix.png`` are written there.

    Use it as the ``validator`` of MONAI's :class:`~monai.handlers.ValidationHandler` during training, or run it
    once with :func:`evaluate_classifier`.

    Args:
        device: device to evaluate on.
        val_data_loader: loader of ``{"image": (B, C, *spatial), "label": (B,)}`` batches.
        network: classifier returning ``(B, num_classes)`` logits.
        num_classes: number of classes.
        class_names: class names for the report and figure (default ``"0"``, ``"1"``, ...).
        output_dir: folder for ``metrics.json`` / ``confusion_matrix.png`` (``None``: write nothing).
        prefix: prefix of the file names (e.g. ``"val_"``).
        prepare_batch: defaults to :class:`ExpertPrepareBatch`.
        val_handlers: handlers attached after the report computation.
        kwargs: other :class:`~monai.engines.SupervisedEvaluator` arguments (``inferer``, ``amp``,
            ``epoch_length``, ``key_val_metric``, ...). ``decollate`` is always ``False``.

    Raises:
        ValueError: ``num_classes < 2``, wrong ``class_names`` length, ``decollate=True``, or logits that are not
            ``(B, num_classes)``.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> with torch.no_grad():
        ...     _ = net[1].weight.copy_(torch.tensor([[-1.0] * 4, [1.0] * 4])), net[1].bias.zero_()
        >>> images = torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
        >>> data = [{"image": images, "label": torch.tensor([0, 1])}]
        >>> evaluator = ClassificationEvaluator("cpu", data, net, num_classes=2)
        >>> evaluator.run()
        >>> evaluator.state.metrics["accuracy"], evaluator.report["confusion_matrix"]
        (1.0, [[1, 0], [0, 1]])
    """

    def __init__(
        self,
        device: str | torch.device,
        val_data_loader: Iterable,
        network: torch.nn.Module,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        output_dir: str | Path | None = None,
        prefix: str = "",
        prepare_batch: Any = None,
        val_handlers: Sequence | None = None,
        **kwargs: Any,
    ) -> None:
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
        if class_names is not None and len(class_names) != int(num_classes):
            raise ValueError(f"class_names has {len(class_names)} entries but num_classes is {num_classes}.")
        if kwargs.pop("decollate", False):
            raise ValueError("ClassificationEvaluator gathers whole batches: decollate must be False.")
        super().__init__(
            device=torch.device(device) if isinstance(device, str) else device,
            val_data_loader=val_data_loader,
            network=network,
            prepare_batch=ExpertPrepareBatch() if prepare_batch is None else prepare_batch,
            val_handlers=None,  # attached below, after the report handler
            decollate=False,
            **kwargs,
        )
        self.num_classes = int(num_classes)
        self.class_names = [str(c) for c in class_names] if class_names is not None else None
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.prefix = prefix
        self.report: dict[str, Any] | None = None
        self._logits: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self.add_event_handler(Events.EPOCH_STARTED, self._reset)
        self.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        self.add_event_handler(Events.EPOCH_COMPLETED, self._compute)
        if val_handlers is not None:
            self._register_handlers(val_handlers)

    def _reset(self, engine: Engine) -> None:
        self._logits, self._labels = [], []

    def _collect(self, engine: Engine) -> None:
        output: Any = engine.state.output
        logits = _plain(output[CommonKeys.PRED]).detach()
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"the network must return (B, {self.num_classes}) logits, got {tuple(logits.shape)}.")
        self._logits.append(logits.float().cpu())
        self._labels.append(_plain(output[CommonKeys.LABEL]).detach().reshape(-1).long().cpu())

    def _compute(self, engine: Engine) -> None:
        if not self._logits:
            raise ValueError("the evaluation data loader produced no batches.")
        logits, labels = torch.cat(self._logits), torch.cat(self._labels)
        self.report = classification_report(
            labels,
            logits.argmax(dim=1),
            torch.softmax(logits, dim=1),
            num_classes=self.num_classes,
            class_names=self.class_names,
        )
        engine.state.metrics.update({k: self.report[k] for k in REPORT_SCALARS})
        if self.output_dir is not None:
            self.save_report(self.output_dir, self.prefix)

    def save_report(self, output_dir: str | Path, prefix: str = "", title: str | None = None) -> tuple[Path, Path]:
        """Write the last report as ``<prefix>metrics.json`` and ``<prefix>confusion_matrix.png``.

        Args:
            output_dir: destination folder (created if needed).
            prefix: prefix of both file names.
            title: figure title (default: accuracy and balanced accuracy).

        Returns:
            the paths of the JSON file and of the PNG.
        """
        if self.report is None:
            raise RuntimeError("no report yet: run the evaluator first.")
        output_dir = Path(output_dir)
        json_path = output_dir / f"{prefix}metrics.json"
        write_json(json_path, {**self.report, "epoch": int(self.state.epoch)})
        if title is None:
            title = (
                f"{prefix}accuracy {self.report['accuracy']:.3f}, "
                f"balanced accuracy {self.report['balanced_accuracy']:.3f}"
            )
        png_path = save_confusion_matrix_png(
            self.report["confusion_matrix"],
            self.report["class_names"],
            output_dir / f"{prefix}confusion_matrix.png",
            title=title,
        )
        return json_path, png_path
