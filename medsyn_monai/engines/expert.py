"""Building blocks to train and evaluate expert classifiers from bundle configs (MONAI/Ignite engines)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.engines import SupervisedEvaluator
from monai.utils import CommonKeys

from medsyn_monai.metrics.classification import classification_report
from medsyn_monai.utils.io import atomic_write, write_json
from medsyn_monai.visualize.confusion_matrix import save_confusion_matrix_png

__all__ = [
    "ExpertPrepareBatch",
    "ClassificationEvaluator",
    "evaluate_classifier",
    "BestCheckpointHandler",
    "class_weights",
]

# scalar entries of a classification report copied into ``engine.state.metrics``
REPORT_SCALARS = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc")


def _plain(x: Any) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x.as_tensor() if isinstance(x, MetaTensor) else x


class ExpertPrepareBatch:
    """Prepare a dictionary batch for classifier training/evaluation with MONAI engines.

    Returns plain tensors ``(images, labels)``: float images on ``device`` (meta data dropped) and ``(B,)`` int64
    labels, as :class:`torch.nn.CrossEntropyLoss` expects (``(B, 1)`` labels are flattened).

    Args:
        image_key: key of the images ``(B, C, *spatial)`` in the batch.
        label_key: key of the class indices ``(B,)`` or ``(B, 1)``.

    Example:
        >>> import torch
        >>> images, labels = ExpertPrepareBatch()({"image": torch.zeros(2, 1, 4, 4), "label": torch.tensor([[1], [0]])})
        >>> images.dtype, labels.tolist(), labels.dtype
        (torch.float32, [1, 0], torch.int64)
    """

    def __init__(self, image_key: str = CommonKeys.IMAGE, label_key: str = CommonKeys.LABEL) -> None:
        self.image_key = image_key
        self.label_key = label_key

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(batchdata, Mapping):
            raise ValueError(f"ExpertPrepareBatch expects a dictionary batch, got {type(batchdata).__name__}.")
        for key in (self.image_key, self.label_key):
            if key not in batchdata:
                raise ValueError(f"the batch has no '{key}' entry (keys: {sorted(map(str, batchdata))}).")
        images = _plain(batchdata[self.image_key]).to(device=device, non_blocking=non_blocking, **kwargs).float()
        labels = _plain(batchdata[self.label_key]).reshape(-1)
        if labels.numel() != images.shape[0]:
            raise ValueError(f"{labels.numel()} labels for a batch of {images.shape[0]} images.")
        if labels.is_floating_point() and not torch.equal(labels, labels.round()):
            raise ValueError("labels must be integer class indices.")
        return images, labels.long().to(device=device, non_blocking=non_blocking)


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
            val_data_loader=val_data_loader,  # type: ignore[arg-type]
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
        output = engine.state.output
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


def evaluate_classifier(
    network: torch.nn.Module,
    data_loader: Iterable,
    device: str | torch.device,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    output_dir: str | Path | None = None,
    prefix: str = "",
    **kwargs: Any,
) -> dict[str, Any]:
    """Run a classifier over a loader once and return its classification report.

    The network runs in eval mode without gradients (its training mode is restored afterwards).

    Args:
        network: classifier returning ``(B, num_classes)`` logits.
        data_loader: loader of ``{"image", "label"}`` batches.
        device: device to evaluate on.
        num_classes: number of classes.
        class_names: class names (default ``"0"``, ``"1"``, ...).
        output_dir: when given, ``<prefix>metrics.json`` and ``<prefix>confusion_matrix.png`` are written there.
        prefix: prefix of the file names.
        kwargs: other :class:`ClassificationEvaluator` arguments (``prepare_batch``, ``inferer``, ``amp``, ...).

    Returns:
        :func:`~medsyn_monai.metrics.classification.classification_report` of the whole loader.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1, 2))
        >>> data = [{"image": torch.zeros(3, 1, 1, 1), "label": torch.tensor([0, 1, 1])}]
        >>> report = evaluate_classifier(net, data, "cpu", num_classes=2)
        >>> report["support"], sum(map(sum, report["confusion_matrix"]))
        ({'0': 1, '1': 2}, 3)
    """
    evaluator = ClassificationEvaluator(
        device,
        data_loader,
        network,
        num_classes,
        class_names=class_names,
        output_dir=output_dir,
        prefix=prefix,
        **kwargs,
    )
    evaluator.run()
    assert evaluator.report is not None
    return evaluator.report


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
        net = self.network
        while True:  # unwrap DataParallel / DistributedDataParallel / torch.compile
            if isinstance(net, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
                net = net.module
            elif hasattr(net, "_orig_mod"):
                net = net._orig_mod
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


def class_weights(labels: Sequence[int] | np.ndarray | torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights normalised to mean 1, for a class-weighted cross-entropy.

    ``w_c = (1 / n_c) / mean_k(1 / n_k)`` where ``n_c`` is the number of training samples of class ``c``.

    Args:
        labels: class indices of the training samples.
        num_classes: number of classes.

    Returns:
        ``(num_classes,)`` float32 weights, e.g. ``torch.nn.CrossEntropyLoss(weight=class_weights(...))``.

    Raises:
        ValueError: no labels, an index outside ``[0, num_classes)``, or a class without samples (its weight would
            be infinite).

    Example:
        >>> class_weights([0, 0, 0, 1], num_classes=2).tolist()
        [0.5, 1.5]
    """
    t = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    if t.numel() == 0:
        raise ValueError("class_weights needs at least one label.")
    if t.is_floating_point() and not torch.equal(t, t.round()):
        raise ValueError("labels must be integer class indices.")
    t = t.long()
    if int(t.min()) < 0 or int(t.max()) >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes}), got min {int(t.min())}, max {int(t.max())}.")
    counts = torch.bincount(t, minlength=num_classes).double()
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).reshape(-1).tolist()
        raise ValueError(f"classes {missing} have no samples: their inverse-frequency weight is undefined.")
    inv = 1.0 / counts
    return (inv / inv.mean()).float()
