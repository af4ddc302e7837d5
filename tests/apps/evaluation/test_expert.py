"""ExpertTraining: trains a tiny expert, keeps and restores the best validation epoch, tests it, writes what
ExpertClassifier.from_checkpoint reads; errors for too few classes, missing classes and unrecorded networks."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from medsyn_monai.apps.evaluation import ExpertTraining
from medsyn_monai.data.datasets import TensorPairDataset
from medsyn_monai.networks.nets import ExpertClassifier, network_config

CLASSES = ["dark", "bright"]


def _data(n: int, seed: int, labels: list[int] | None = None) -> TensorPairDataset:
    """``n`` 16-px images: class 0 dark (about -0.6), class 1 bright (about 0.6), labels alternating by default."""
    y = torch.arange(n) % 2 if labels is None else torch.tensor(labels)
    noise = 0.2 * torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed))
    return TensorPairDataset((y.float() * 1.2 - 0.6).view(n, 1, 1, 1) + noise, y)


def _expert() -> ExpertClassifier:
    torch.manual_seed(0)
    return ExpertClassifier("resnet18", 1, 2, image_size=16, network_kwargs={"widen_factor": 0.25})


def _training(tmp_path, train=None, val=None, test=None, network=None, **kwargs) -> ExpertTraining:
    args = {"max_epochs": 2, "batch_size": 4, "learning_rate": 1e-2, **kwargs}
    return ExpertTraining(network if network is not None else _expert(), train or _data(8, 1), val or _data(4, 2),
                          test or _data(6, 3), CLASSES, tmp_path / "models", tmp_path / "eval", **args)  # fmt: skip


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_best_validation_epoch_is_restored_and_tested(tmp_path):
    # identical validation images: every epoch predicts one class for all, balanced accuracy 0.5 each time, so the
    # first epoch stays the best (ties do not replace it) although training goes on for a second epoch
    same = TensorPairDataset(torch.zeros(4, 1, 16, 16), torch.tensor([0, 1, 0, 1]))
    training = _training(tmp_path, val=same, log_csv=tmp_path / "log.csv", tensorboard_dir=tmp_path / "tb",
                         info={"bundle": "tiny", "image_size": 16, "kind": "overridden"})  # fmt: skip
    report = training.run()
    net = training.network
    models, evals = tmp_path / "models", tmp_path / "eval"
    assert sorted(p.name for p in models.iterdir()) == ["best_metric.json", "best_model.pt", "model_info.json"]
    assert sorted(p.name for p in evals.iterdir()) == [
        "test_confusion_matrix.png", "test_metrics.json", "val_confusion_matrix.png", "val_metrics.json"
    ]  # fmt: skip
    best = json.loads((models / "best_metric.json").read_text())
    assert (best["metric"], best["value"], best["epoch"]) == ("balanced_accuracy", 0.5, 1)
    rows = _rows(tmp_path / "log.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[0]["mean_loss"] != rows[1]["mean_loss"]  # weights moved
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    # the network holds the weights of epoch 1 again (not those of the last epoch)
    saved = torch.load(models / "best_model.pt", weights_only=True)
    assert saved.keys() == net.state_dict().keys()
    assert all(torch.equal(v, saved[k]) for k, v in net.state_dict().items())
    # the test report is that of the restored network on the test images
    net.eval()
    with torch.no_grad():
        pred = net(training.test_data.images).argmax(1)
    truth = training.test_data.labels
    assert report["confusion_matrix"] == [[int(((truth == i) & (pred == j)).sum()) for j in (0, 1)] for i in (0, 1)]
    # the validation report is that of the restored (best) epoch, not of the last epoch trained
    val = json.loads((evals / "val_metrics.json").read_text())
    assert (val["epoch"], val["balanced_accuracy"], val["num_samples"]) == (1, 0.5, 4)
    written = json.loads((evals / "test_metrics.json").read_text())
    assert written.pop("epoch") == 1 and written == json.loads(json.dumps(report))
    assert report["class_names"] == CLASSES and report["num_samples"] == 6
    # model_info.json: what ExpertClassifier.from_checkpoint rebuilds the expert from; "kind" cannot be overridden
    info = json.loads((models / "model_info.json").read_text())
    assert info == {"bundle": "tiny", "image_size": 16, "kind": "expert", "network": network_config(net),
                    "num_classes": 2, "class_names": CLASSES}  # fmt: skip
    rebuilt = ExpertClassifier.from_checkpoint(models / "best_model.pt").eval()
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), net(x))


def test_learns_two_separable_classes(tmp_path):
    report = _training(tmp_path, max_epochs=4, log_csv=tmp_path / "log.csv").run()
    losses = [float(r["mean_loss"]) for r in _rows(tmp_path / "log.csv")]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert report["balanced_accuracy"] >= 0.8  # 6 test images; chance is 0.5
    best = json.loads((tmp_path / "models" / "best_metric.json").read_text())
    assert best["value"] >= 0.75 and 1 <= best["epoch"] <= 4


@pytest.mark.parametrize("names", [None, [], ["only"]])
def test_fewer_than_two_classes(tmp_path, names):
    with pytest.raises(ValueError) as info:
        ExpertTraining(_expert(), _data(4, 1), _data(4, 2), _data(4, 3), names, tmp_path, tmp_path, max_epochs=1)
    msg = str(info.value)
    assert msg.startswith(f"an expert classifier needs labelled data of at least 2 classes, got class names {names}")
    assert "class folders" in msg


def test_a_class_missing_from_the_training_data(tmp_path):
    dark_only = _data(4, 1, labels=[0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"classes \[1\] have no samples"):
        _training(tmp_path / "weighted", train=dark_only).run()
    assert not (tmp_path / "weighted" / "models" / "best_model.pt").exists()  # stopped before training
    # the unweighted cross-entropy needs no class frequencies: it trains
    report = _training(tmp_path / "plain", train=dark_only, class_weighted="false", max_epochs=1).run()
    assert report["num_samples"] == 6


def test_network_that_does_not_record_its_arguments(tmp_path):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 2))
    with pytest.raises(ValueError, match="^Sequential is not one of the networks that record their arguments"):
        _training(tmp_path, network=net).run()
    assert not (tmp_path / "models").exists()  # nothing written, nothing trained
