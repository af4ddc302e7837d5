"""ClassificationEvaluator: a tiny end-to-end expert training with MONAI's SupervisedTrainer, and its arguments."""

from __future__ import annotations

import json

import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.handlers import ValidationHandler
from torch.utils.data import DataLoader

from medsyn_monai.apps.evaluation import evaluate_classifier
from medsyn_monai.engines import ClassificationEvaluator, ExpertPrepareBatch
from medsyn_monai.handlers import BestCheckpointHandler
from medsyn_monai.losses import class_weights
from medsyn_monai.networks.nets.classifiers import ExpertClassifier


def _bright_dark(n: int, generator: torch.Generator) -> list[dict]:
    labels = torch.arange(n) % 2
    images = torch.where(labels.view(-1, 1, 1, 1) == 1, 0.7, -0.7) + 0.1 * torch.randn(
        n, 1, 16, 16, generator=generator
    )
    return [{"image": images[i], "label": labels[i]} for i in range(n)]


def test_train_expert_end_to_end(tmp_path):
    """SupervisedTrainer + ClassificationEvaluator + BestCheckpointHandler on bright (1) vs dark (0) images."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    train, val = _bright_dark(16, gen), _bright_dark(8, gen)
    # resnet18 at a quarter of its width: the test is about the plumbing, not the capacity
    net = ExpertClassifier("resnet18", 1, 2, image_size=32, network_kwargs={"widen_factor": 0.25})
    best = BestCheckpointHandler(tmp_path / "models", net, metric_name="balanced_accuracy")
    history: list[float] = []
    evaluator = ClassificationEvaluator(
        "cpu", DataLoader(val, batch_size=8), net, 2, ["dark", "bright"], val_handlers=[best]
    )
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: history.append(e.state.metrics["balanced_accuracy"]))
    loss = torch.nn.CrossEntropyLoss(weight=class_weights([d["label"] for d in train], 2))
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=25,
        train_data_loader=DataLoader(train, batch_size=8, shuffle=True),
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), 1e-3),
        loss_function=loss,
        prepare_batch=ExpertPrepareBatch(),
        train_handlers=[ValidationHandler(interval=1, validator=evaluator)],
    )
    trainer.run()
    assert len(history) == 25
    assert best.best_value == 1.0 and best.best_epoch == history.index(1.0) + 1
    record = json.loads((tmp_path / "models" / "best_metric.json").read_text())
    assert record["value"] == 1.0 and record["metrics"]["accuracy"] == 1.0

    report = evaluate_classifier(net, DataLoader(val, batch_size=4), "cpu", 2, ["dark", "bright"], tmp_path, "val_")
    assert report["accuracy"] == 1.0 and report["confusion_matrix"] == [[4, 0], [0, 4]]
    assert (tmp_path / "val_metrics.json").is_file() and (tmp_path / "val_confusion_matrix.png").is_file()
    # the best checkpoint loads into a new expert and classifies the validation set perfectly too
    reloaded = ExpertClassifier(
        "resnet18",
        1,
        2,
        image_size=32,
        pretrained_path=tmp_path / "models" / "best_model.pt",
        network_kwargs={"widen_factor": 0.25},
    )
    assert evaluate_classifier(reloaded, DataLoader(val, batch_size=8), "cpu", 2)["balanced_accuracy"] == 1.0


def test_decollate_is_refused():
    data = [{"image": torch.zeros(2, 1, 4, 4), "label": torch.tensor([0, 1])}]
    with pytest.raises(ValueError, match="decollate"):
        ClassificationEvaluator("cpu", data, torch.nn.Flatten(), 2, decollate=True)
