"""Train the expert classifier of a bundle's evaluations on real images: best epoch by validation, then tested."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.handlers import StatsHandler, ValidationHandler
from monai.inferers import SimpleInferer
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.tensorboard import SummaryWriter

from medsyn_monai.data.datasets import dataset_labels
from medsyn_monai.engines.evaluator import ClassificationEvaluator
from medsyn_monai.engines.prepare_batch import ExpertPrepareBatch
from medsyn_monai.handlers import BestCheckpointHandler, LossProgressBar, TrainingStatsHandler
from medsyn_monai.losses import ClassWeightedCrossEntropyLoss
from medsyn_monai.networks.nets import network_config
from medsyn_monai.utils.model_info import save_model_info

__all__ = ["ExpertTraining"]


class ExpertTraining:
    """Train an expert classifier (e.g. :class:`~medsyn_monai.networks.nets.ExpertClassifier`) and test it.

    The experts score synthetic images (generation accuracy, confusion matrices) and give the features of the
    distribution metrics, so every bundle trains one on the real images of its own collection and split, with the
    preprocessing of its diffusion model. The workflow is MONAI's: a :class:`~monai.engines.SupervisedTrainer`
    (Adam, cross-entropy with inverse-frequency class weights,
    :class:`~medsyn_monai.losses.ClassWeightedCrossEntropyLoss`) validated after every epoch by a
    :class:`~medsyn_monai.engines.ClassificationEvaluator` (MONAI's ``ValidationHandler``), whose
    :class:`~medsyn_monai.handlers.BestCheckpointHandler` keeps the weights of the best validation balanced accuracy;
    those weights are restored and tested once on the test data. Written:

    - ``models_dir``: ``best_model.pt``, ``best_metric.json`` and ``model_info.json`` (the network's config, class
      names and ``info``; what :meth:`~medsyn_monai.networks.nets.ExpertClassifier.from_checkpoint` reads);
    - ``eval_dir``: ``val_metrics.json`` / ``val_confusion_matrix.png`` (best epoch) and ``test_metrics.json`` /
      ``test_confusion_matrix.png``;
    - ``log_csv`` (per-epoch loss) and TensorBoard scalars in ``tensorboard_dir``.

    Args:
        network: the classifier, on ``device``; it must record its arguments (``init_args``) for ``model_info.json``.
        train_data: ``{"image", "label"}`` training items (e.g. a :class:`~medsyn_monai.data.SliceDataset` with its
            augmentation).
        val_data: validation items (best-epoch selection).
        test_data: test items.
        class_names: the class names, label ``i`` being ``class_names[i]``.
        models_dir: folder of the weights and ``model_info.json``.
        eval_dir: folder of the reports.
        max_epochs: training epochs.
        batch_size: batch size.
        learning_rate: Adam learning rate.
        class_weighted: inverse-frequency class weights in the cross-entropy.
        device: training device.
        num_workers: data loader workers.
        log_csv: per-epoch CSV log (``None``: none).
        tensorboard_dir: TensorBoard folder (``None``: none).
        info: further ``model_info.json`` entries (e.g. ``bundle``, ``image_size``, ``ct_window``).

    Raises:
        ValueError: fewer than 2 classes, or (with ``class_weighted``) a class without training images.
    """

    def __init__(
        self,
        network: nn.Module,
        train_data: Dataset,
        val_data: Dataset,
        test_data: Dataset,
        class_names: Sequence[str],
        models_dir: str | Path,
        eval_dir: str | Path,
        max_epochs: int,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        class_weighted: bool = True,
        device: str | torch.device = "cpu",
        num_workers: int = 0,
        log_csv: str | Path | None = None,
        tensorboard_dir: str | Path | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        if class_names is None or len(class_names) < 2:
            raise ValueError(
                f"an expert classifier needs labelled data of at least 2 classes, got class names {class_names}: "
                "point dataset_dir at class folders, a CSV with a label column or a MedMNIST .npz."
            )
        self.network = network
        self.train_data, self.val_data, self.test_data = train_data, val_data, test_data
        self.class_names = [str(c) for c in class_names]
        self.models_dir, self.eval_dir = Path(models_dir), Path(eval_dir)
        self.max_epochs, self.batch_size = int(max_epochs), int(batch_size)
        self.learning_rate = float(learning_rate)
        self.class_weighted = class_weighted
        self.device = torch.device(device)
        self.num_workers = int(num_workers)
        self.log_csv = log_csv
        self.tensorboard_dir = tensorboard_dir
        self.info = dict(info or {})
        self.logger = logging.getLogger(__name__)

    def _loader(self, data: Dataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers)

    def _evaluator(
        self, data: Dataset, prefix: str, handlers: Sequence | None = None, write: bool = True
    ) -> ClassificationEvaluator:
        return ClassificationEvaluator(self.device, self._loader(data), self.network, len(self.class_names),
                                       class_names=self.class_names, output_dir=self.eval_dir if write else None,
                                       prefix=prefix, val_handlers=handlers)  # fmt: skip

    def run(self) -> dict[str, Any]:
        """Train, keep the best validation epoch, test it; return the test classification report."""
        num_classes = len(self.class_names)
        labels = dataset_labels(self.train_data)
        save_model_info(self.models_dir, **{**self.info, "kind": "expert", "network": network_config(self.network),
                                            "num_classes": num_classes, "class_names": self.class_names})  # fmt: skip
        best = BestCheckpointHandler(self.models_dir, self.network)
        stats = StatsHandler(iteration_log=False, name="medsyn_monai.expert")
        # per-epoch validation only selects the best epoch; its report is written once, for the restored weights
        validator = self._evaluator(self.val_data, "val_", [best, stats], write=False)
        writer = SummaryWriter(str(self.tensorboard_dir)) if self.tensorboard_dir is not None else None
        optimizer = torch.optim.Adam(self.network.parameters(), lr=self.learning_rate)
        handlers = [
            ValidationHandler(validator=validator, epoch_level=True, interval=1),
            TrainingStatsHandler(optimizer, writer, self.log_csv, logger_name="medsyn_monai.expert"),
            LossProgressBar(),
        ]
        trainer = SupervisedTrainer(
            device=self.device,
            max_epochs=self.max_epochs,
            train_data_loader=self._loader(self.train_data, shuffle=True),
            network=self.network,
            optimizer=optimizer,
            loss_function=ClassWeightedCrossEntropyLoss(labels, num_classes, self.class_weighted),
            inferer=SimpleInferer(),
            prepare_batch=ExpertPrepareBatch(),
            decollate=False,
            train_handlers=handlers,
        )
        try:
            trainer.run()
        finally:
            if writer is not None:
                writer.close()
        best.restore()
        best_epoch = best.best_epoch if best.best_epoch is not None else self.max_epochs
        self._evaluator(self.val_data, "val_").run(best_epoch)  # val_metrics.json of the best epoch
        tester = self._evaluator(self.test_data, "test_")
        tester.run(best_epoch)
        assert tester.report is not None
        self.logger.info(
            f"expert test accuracy {tester.report['accuracy']:.3f}, balanced accuracy "
            f"{tester.report['balanced_accuracy']:.3f} (best validation epoch {best.best_epoch})"
        )
        return tester.report
