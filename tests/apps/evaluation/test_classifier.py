"""evaluate_classifier: metrics and confusion-matrix files, strict JSON (an undefined AUC is null), bad logits."""

from __future__ import annotations

import json
import math

import pytest
import torch

from medsyn_monai.apps.evaluation import evaluate_classifier


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
