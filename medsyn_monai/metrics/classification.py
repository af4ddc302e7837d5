"""Classification metrics of expert classifiers (accuracy, balanced accuracy, macro F1, ROC AUC, confusion matrix)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.metrics import compute_roc_auc

__all__ = ["classification_report", "confusion_matrix"]

ArrayLike = torch.Tensor | np.ndarray | Sequence


def _labels(values: ArrayLike, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values).detach().cpu()
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 1:
        raise ValueError(f"{name} must be a 1D sequence of class indices, got shape {tuple(t.shape)}.")
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise ValueError(f"{name} must hold integer class indices, got non-integer values.")
    elif t.dtype == torch.bool:
        t = t.long()
    return t.long()


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> torch.Tensor:
    """Confusion matrix with rows = true class and columns = predicted class.

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_pred: predicted class indices, shape ``(N,)``.
        num_classes: number of classes ``C``.

    Returns:
        ``(C, C)`` int64 tensor; entry ``[i, j]`` counts samples of class ``i`` predicted as ``j``.

    Raises:
        ValueError: different lengths, or indices outside ``[0, num_classes)``.

    Example:
        >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], num_classes=3).tolist()
        [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    """
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred have different lengths: {t.numel()} vs {p.numel()}.")
    for name, v in (("y_true", t), ("y_pred", p)):
        if v.numel() and (int(v.min()) < 0 or int(v.max()) >= num_classes):
            raise ValueError(
                f"{name} has class indices outside [0, {num_classes}): min {int(v.min())}, max {int(v.max())}."
            )
    return torch.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_div(num: float, den: float, empty: float) -> float:
    return num / den if den > 0 else empty


def _roc_auc(y_true: torch.Tensor, y_score: ArrayLike, num_classes: int) -> tuple[float, list[float]]:
    """Binary: AUC of the positive-class score; multi-class: macro one-vs-rest AUC over classes where it is defined."""
    s = torch.as_tensor(np.asarray(y_score) if not isinstance(y_score, torch.Tensor) else y_score)
    s = s.detach().cpu().double()
    n = y_true.numel()
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if num_classes == 2 and s.ndim == 1:
        s = torch.stack([-s, s], dim=1)  # only the positive-class column is used below
    if s.ndim != 2 or s.shape != (n, num_classes):
        raise ValueError(
            f"y_score must have shape (N, num_classes) = ({n}, {num_classes})"
            + (" or (N,) positive-class scores for 2 classes" if num_classes == 2 else "")
            + f", got {tuple(s.shape)}."
        )
    onehot = torch.nn.functional.one_hot(y_true, num_classes).double()
    per_class: list[float] = []
    for c in range(num_classes):
        positives = int(onehot[:, c].sum())
        if positives == 0 or positives == n:  # AUC undefined without both positives and negatives
            per_class.append(float("nan"))
        else:
            auc = compute_roc_auc(s[:, c], onehot[:, c])
            assert isinstance(auc, (float, np.floating))  # 1-D scores and targets give a single AUC
            per_class.append(float(auc))
    if num_classes == 2:
        return per_class[1], per_class
    defined = [v for v in per_class if not math.isnan(v)]
    return (float(np.mean(defined)) if defined else float("nan")), per_class


def classification_report(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    y_score: ArrayLike | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Classification metrics of predicted class indices (and optional scores), in pure torch/numpy.

    Definitions (as scikit-learn with ``zero_division=0``):

    - ``accuracy``: fraction of correct predictions.
    - ``per_class_accuracy``: recall of each class, ``TP / support`` (``nan`` for a class without samples).
    - ``balanced_accuracy``: mean of the per-class recalls over classes present in ``y_true``.
    - ``precision_macro`` / ``recall_macro`` / ``f1_macro``: unweighted means over the classes present in
      ``y_true`` or ``y_pred``; an undefined precision (class never predicted) or recall counts as 0.
    - ``roc_auc``: with ``y_score`` (probabilities, e.g. the softmax of the logits), for 2 classes the AUC of the
      positive-class (index 1) score; for more classes the macro one-vs-rest AUC over the classes that have both
      positive and negative samples (:func:`monai.metrics.compute_roc_auc` per class). ``nan`` when undefined,
      ``None`` without ``y_score``.
    - ``confusion_matrix``: list of lists, rows = true class, columns = predicted class.
    - ``support``: number of samples of each class in ``y_true``.

    Per-class entries are ``{class_name: value}`` dictionaries.

    Args:
        y_true: true class indices ``(N,)`` (tensor, array or sequence).
        y_pred: predicted class indices ``(N,)``.
        y_score: optional class scores ``(N, num_classes)``; for 2 classes also ``(N,)`` positive-class scores.
        num_classes: number of classes; by default ``len(class_names)``, else ``y_score.shape[1]``, else
            ``max(y_true, y_pred) + 1``.
        class_names: names of the classes (default ``"0"``, ``"1"``, ...).

    Returns:
        dictionary with ``num_samples``, ``accuracy``, ``balanced_accuracy``, ``per_class_accuracy``,
        ``per_class_precision``, ``per_class_f1``, ``precision_macro``, ``recall_macro``, ``f1_macro``, ``roc_auc``,
        ``per_class_roc_auc`` (one-vs-rest, ``None`` without ``y_score``), ``confusion_matrix``, ``support`` and
        ``class_names``.

    Raises:
        ValueError: empty or mismatching inputs, class indices out of range, wrong ``class_names`` length or
            ``y_score`` shape.

    Example:
        >>> r = classification_report([0, 0, 1, 1], [0, 1, 1, 1], class_names=["normal", "lesion"])
        >>> r["accuracy"], r["per_class_accuracy"], r["confusion_matrix"]
        (0.75, {'normal': 0.5, 'lesion': 1.0}, [[1, 1], [0, 2]])
    """
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.numel() == 0:
        raise ValueError("classification_report needs at least one sample.")
    if num_classes is None:
        if class_names is not None:
            num_classes = len(class_names)
        elif y_score is not None and np.ndim(y_score) == 2:
            num_classes = int(np.shape(y_score)[1])
        else:
            num_classes = int(max(int(t.max()), int(p.max()))) + 1
    num_classes = int(num_classes)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
    names = [str(i) for i in range(num_classes)] if class_names is None else [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} entries but num_classes is {num_classes}.")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names}.")

    cm = confusion_matrix(t, p, num_classes).double()
    tp = cm.diag()
    support = cm.sum(dim=1)
    predicted = cm.sum(dim=0)
    recall = [_safe_div(float(tp[c]), float(support[c]), float("nan")) for c in range(num_classes)]
    precision = [_safe_div(float(tp[c]), float(predicted[c]), 0.0) for c in range(num_classes)]
    recall0 = [0.0 if math.isnan(r) else r for r in recall]
    f1 = [_safe_div(2 * pr * rc, pr + rc, 0.0) for pr, rc in zip(precision, recall0, strict=True)]
    present = [c for c in range(num_classes) if support[c] > 0]
    labelled = [c for c in range(num_classes) if support[c] > 0 or predicted[c] > 0]

    report: dict[str, Any] = {
        "num_samples": int(t.numel()),
        "accuracy": float(tp.sum() / t.numel()),
        "balanced_accuracy": float(np.mean([recall[c] for c in present])),
        "per_class_accuracy": dict(zip(names, recall, strict=True)),
        "per_class_precision": dict(zip(names, precision, strict=True)),
        "per_class_f1": dict(zip(names, f1, strict=True)),
        "precision_macro": float(np.mean([precision[c] for c in labelled])),
        "recall_macro": float(np.mean([recall0[c] for c in labelled])),
        "f1_macro": float(np.mean([f1[c] for c in labelled])),
        "roc_auc": None,
        "per_class_roc_auc": None,
        "confusion_matrix": cm.long().tolist(),
        "support": {n: int(s) for n, s in zip(names, support.tolist(), strict=True)},
        "class_names": names,
    }
    if y_score is not None:
        auc, per_class_auc = _roc_auc(t, y_score, num_classes)
        report["roc_auc"] = auc
        report["per_class_roc_auc"] = dict(zip(names, per_class_auc, strict=True))
    return report
