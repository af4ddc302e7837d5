"""Expert training/evaluation building blocks, and a tiny end-to-end training with MONAI's SupervisedTrainer."""

from __future__ import annotations

import json
import math

import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.engines import SupervisedTrainer
from monai.handlers import ValidationHandler
from torch.utils.data import DataLoader

from medsyn_monai.apps.evaluation import evaluate_classifier
from medsyn_monai.engines import ClassificationEvaluator, ExpertPrepareBatch
from medsyn_monai.handlers import BestCheckpointHandler
from medsyn_monai.losses import class_weights
from medsyn_monai.networks.nets.classifiers import ExpertClassifier


def test_prepare_batch():
    batch = {"img": MetaTensor(torch.ones(3, 1, 4, 4)), "y": torch.tensor([[1.0], [0.0], [2.0]])}
    images, labels = ExpertPrepareBatch(image_key="img", label_key="y")(batch, "cpu")
    assert type(images) is torch.Tensor and images.dtype == torch.float32 and images.shape == (3, 1, 4, 4)
    assert type(labels) is torch.Tensor and labels.dtype == torch.int64 and labels.tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match="no 'label' entry"):
        ExpertPrepareBatch()({"image": torch.zeros(1, 1, 2, 2)})
    with pytest.raises(ValueError, match="2 labels for a batch of 3"):
        ExpertPrepareBatch()({"image": torch.zeros(3, 1, 2, 2), "label": torch.tensor([0, 1])})
    with pytest.raises(ValueError, match="dictionary"):
        ExpertPrepareBatch()([torch.zeros(1, 1, 2, 2), torch.zeros(1)])


def test_class_weights():
    assert class_weights([0, 0, 0, 1], 2).tolist() == [0.5, 1.5]
    w = class_weights(torch.tensor([0, 1, 1, 2, 2, 2, 2]), 3)  # counts 1, 2, 4 -> 1/n proportional to 4:2:1
    torch.testing.assert_close(w, torch.tensor([4.0, 2.0, 1.0]) / (7 / 3))
    assert w.dtype == torch.float32 and w.mean().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"classes \[2\] have no samples"):
        class_weights([0, 1, 1], 3)
    with pytest.raises(ValueError, match="in \\[0, 2\\)"):
        class_weights([0, 2], 2)
    with pytest.raises(ValueError, match="at least one"):
        class_weights([], 2)


def _engine_with_metric(values, net, offset: float = 0.0):
    """An Ignite engine whose epoch ``e`` reports ``values[e - 1]`` and sets the network's weight to ``offset + e``."""
    engine = Engine(lambda e, b: None)

    @engine.on(Events.EPOCH_STARTED)
    def _(e):
        e.state.metrics["score"] = values[e.state.epoch - 1]
        with torch.no_grad():
            net.weight.fill_(offset + e.state.epoch)

    return engine


def test_best_checkpoint_handler(tmp_path):
    net = torch.nn.Linear(1, 1)
    handler = BestCheckpointHandler(tmp_path, net, metric_name="score")
    engine = _engine_with_metric([0.5, 0.9, float("nan"), 0.7], net)
    handler.attach(engine)
    engine.run([0], max_epochs=4)
    assert (handler.best_value, handler.best_epoch) == (0.9, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_metric.json", "best_model.pt"]  # no temp files left
    assert torch.load(tmp_path / "best_model.pt")["weight"].item() == 2.0  # the weights of epoch 2
    record = json.loads((tmp_path / "best_metric.json").read_text())
    assert record["metric"] == "score" and record["value"] == 0.9 and record["epoch"] == 2
    assert record["metrics"] == {"score": 0.9}

    # resuming: the recorded best must be beaten before anything is overwritten
    resumed = BestCheckpointHandler(tmp_path, net, metric_name="score")
    assert resumed.best_value == 0.9
    engine2 = _engine_with_metric([0.8, 0.95], net, offset=10.0)
    resumed.attach(engine2)
    engine2.run([0], max_epochs=1)  # 0.8 < 0.9: the file of the first run stays
    assert torch.load(tmp_path / "best_model.pt")["weight"].item() == 2.0
    engine2.run([0], max_epochs=2)  # 0.95 > 0.9 at epoch 2 (weight 12)
    assert torch.load(tmp_path / "best_model.pt")["weight"].item() == 12.0
    assert json.loads((tmp_path / "best_metric.json").read_text())["value"] == 0.95
    # another metric name starts from scratch
    assert BestCheckpointHandler(tmp_path, net, metric_name="other").best_value is None


def test_best_checkpoint_handler_min_mode_and_errors(tmp_path):
    net = torch.nn.Linear(1, 1)
    handler = BestCheckpointHandler(tmp_path / "loss", net, metric_name="score", mode="min", resume=False)
    engine = _engine_with_metric([3.0, 1.0, 2.0], net)
    handler.attach(engine)
    engine.run([0], max_epochs=3)
    assert handler.best_epoch == 2 and torch.load(tmp_path / "loss" / "best_model.pt")["weight"].item() == 2.0
    with pytest.raises(ValueError, match="mode"):
        BestCheckpointHandler(tmp_path, net, mode="best")
    missing = BestCheckpointHandler(tmp_path / "x", net, metric_name="auc")
    engine = _engine_with_metric([1.0], net)
    missing.attach(engine)
    with pytest.raises(KeyError, match="'auc' is not in engine.state.metrics"):
        engine.run([0], max_epochs=1)


def test_evaluate_classifier_files_and_strict_json(tmp_path):
    # a fixed "network": logit of class 1 = mean intensity, class 0 = 0
    class MeanClassifier(torch.nn.Module):
        def forward(self, x):
            m = x.mean(dim=(1, 2, 3))
            return torch.stack([torch.zeros_like(m), m], dim=1)

    images = torch.tensor([-1.0, -0.5, 0.5, 1.0, 0.2]).view(5, 1, 1, 1).expand(5, 1, 4, 4)
    data = [
        {"image": images[:3], "label": torch.tensor([0, 0, 1])},
        {"image": images[3:], "label": torch.tensor([1, 0])},
    ]
    net = MeanClassifier().train()
    report = evaluate_classifier(net, data, "cpu", 2, ["dark", "bright"], output_dir=tmp_path, prefix="test_")
    assert net.training  # training mode restored
    assert report["confusion_matrix"] == [[2, 1], [0, 2]] and report["accuracy"] == pytest.approx(0.8)
    assert report["roc_auc"] == pytest.approx(1.0)  # mean 0.2 (a 'dark' sample) ranks below 0.5 and 1.0
    saved = json.loads((tmp_path / "test_metrics.json").read_text())
    assert saved["confusion_matrix"] == [[2, 1], [0, 2]] and saved["class_names"] == ["dark", "bright"]
    assert (tmp_path / "test_confusion_matrix.png").is_file()
    # one class only: the AUC is undefined and written as null (strict JSON, no NaN)
    one_class = [{"image": images[:2], "label": torch.tensor([0, 0])}]
    report = evaluate_classifier(net, one_class, "cpu", 2, output_dir=tmp_path / "one")
    assert math.isnan(report["roc_auc"]) and report["support"] == {"0": 2, "1": 0}
    text = (tmp_path / "one" / "metrics.json").read_text()
    assert "NaN" not in text and json.loads(text)["roc_auc"] is None

    with pytest.raises(ValueError, match=r"\(B, 3\) logits"):
        evaluate_classifier(net, data, "cpu", 3)
    with pytest.raises(ValueError, match="decollate"):
        ClassificationEvaluator("cpu", data, net, 2, decollate=True)


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
