"""classification_report and confusion_matrix against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medsyn_monai.metrics.classification import classification_report, confusion_matrix


def test_perfect_predictions():
    y = [0, 1, 2, 0, 1, 2]
    r = classification_report(torch.tensor(y), np.array(y), num_classes=3, class_names=["a", "b", "c"])
    for key in ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro"):
        assert r[key] == 1.0, key
    assert r["per_class_accuracy"] == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert r["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert r["support"] == {"a": 2, "b": 2, "c": 2}
    assert r["num_samples"] == 6 and r["roc_auc"] is None and r["per_class_roc_auc"] is None


def test_constant_class_predictions():
    # 3 negatives, 1 positive, everything predicted as class 0
    r = classification_report([0, 0, 0, 1], [0, 0, 0, 0], num_classes=2)
    assert r["accuracy"] == 0.75
    assert r["per_class_accuracy"] == {"0": 1.0, "1": 0.0}
    assert r["balanced_accuracy"] == 0.5
    assert r["per_class_precision"] == {"0": 0.75, "1": 0.0}  # class 1 never predicted: 0 (zero_division=0)
    assert r["precision_macro"] == pytest.approx(0.375)
    assert r["recall_macro"] == pytest.approx(0.5)
    f1_0 = 2 * 0.75 * 1.0 / 1.75
    assert r["per_class_f1"]["0"] == pytest.approx(f1_0) and r["per_class_f1"]["1"] == 0.0
    assert r["f1_macro"] == pytest.approx(f1_0 / 2)
    assert r["confusion_matrix"] == [[3, 0], [1, 0]]
    assert r["support"] == {"0": 3, "1": 1}


def test_three_class_example_and_macro_auc():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    scores = [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.5, 0.2, 0.3]]
    r = classification_report(y_true, y_pred, scores, class_names=["normal", "benign", "malignant"])
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_class_accuracy"] == {"normal": 0.5, "benign": 1.0, "malignant": 0.5}
    assert r["balanced_accuracy"] == pytest.approx(2 / 3)
    # precision per predicted column: 1/2, 2/3, 1/1
    assert r["precision_macro"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert r["recall_macro"] == pytest.approx(2 / 3)
    # f1: 0.5, 2*(2/3)*1/(5/3) = 0.8, 2*1*0.5/1.5 = 2/3
    assert r["f1_macro"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # one-vs-rest AUC: class 0 positives score 0.8, 0.3 vs negatives 0.1, 0.2, 0.1, 0.5 -> 7 of 8 pairs ordered;
    # classes 1 and 2 are perfectly ranked
    assert r["per_class_roc_auc"] == pytest.approx({"normal": 0.875, "benign": 1.0, "malignant": 1.0})
    assert r["roc_auc"] == pytest.approx((0.875 + 1 + 1) / 3)


def test_binary_auc_forms_and_undefined_auc():
    y = [0, 0, 1, 1]
    pos = [0.1, 0.4, 0.35, 0.8]  # the classic example: AUC 0.75
    pred = [int(s > 0.5) for s in pos]
    assert classification_report(y, pred, pos)["roc_auc"] == pytest.approx(0.75)
    two_col = torch.tensor([[1 - s, s] for s in pos])
    assert classification_report(y, pred, two_col)["roc_auc"] == pytest.approx(0.75)
    # only one class present: the AUC is undefined
    single = classification_report([1, 1, 1], [1, 0, 1], [0.9, 0.2, 0.7], num_classes=2)
    assert math.isnan(single["roc_auc"])
    # multi-class with a class absent from y_true: macro over the classes where it is defined
    r = classification_report(
        [0, 0, 1, 1], [0, 1, 1, 1], [[0.9, 0.1, 0], [0.4, 0.6, 0], [0.2, 0.8, 0], [0.3, 0.7, 0]], 3
    )
    assert math.isnan(r["per_class_roc_auc"]["2"])
    assert r["roc_auc"] == pytest.approx(1.0)


def test_predicted_class_absent_from_truth():
    # sklearn conventions: balanced accuracy over true classes, macro means over true-or-predicted classes
    r = classification_report([0, 0, 1, 1], [0, 2, 1, 1], num_classes=3)
    assert math.isnan(r["per_class_accuracy"]["2"])
    assert r["balanced_accuracy"] == pytest.approx(0.75)
    assert r["recall_macro"] == pytest.approx(1.5 / 3)
    assert r["precision_macro"] == pytest.approx(2 / 3)
    assert r["support"]["2"] == 0


def test_num_classes_inference_and_errors():
    assert classification_report([0, 1], [1, 1])["class_names"] == ["0", "1"]
    assert len(classification_report([0, 1], [1, 1], class_names=["a", "b", "c"])["confusion_matrix"]) == 3
    assert len(classification_report([0, 1], [1, 1], np.zeros((2, 4)))["support"]) == 4
    assert confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], 3).tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match="at least one"):
        classification_report([], [], num_classes=2)
    with pytest.raises(ValueError, match="different lengths"):
        classification_report([0, 1], [0], num_classes=2)
    with pytest.raises(ValueError, match="outside"):
        classification_report([0, 3], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="class_names"):
        classification_report([0, 1], [0, 1], num_classes=2, class_names=["a"])
    with pytest.raises(ValueError, match="y_score must have shape"):
        classification_report([0, 1, 2], [0, 1, 2], np.zeros((3, 2)), num_classes=3)
    with pytest.raises(ValueError, match="integer"):
        classification_report([0.5, 1], [0, 1], num_classes=2)
