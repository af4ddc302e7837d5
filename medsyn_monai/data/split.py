"""Deterministic, stratified train/val/test split at case level."""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Sequence

from medsyn_monai.utils.enums import Split

__all__ = ["split_by_case"]


def _check_fraction(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}.") from e
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}.")
    return value


def _order_key(seed: int, case_id: str) -> str:
    return hashlib.sha256(f"{seed}\x00{case_id}".encode()).hexdigest()


def split_by_case(
    case_ids: Sequence[str],
    labels: Sequence[int | None] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, str]:
    """Assign every case to ``"train"``, ``"val"`` or ``"test"``.

    The split is deterministic: it depends only on the set of (case, label) pairs and ``seed``, not on their order
    (cases are ranked by a hash of ``seed`` and the case id). With ``labels`` it is stratified: each label (and the
    unlabelled cases, ``None``) is split on its own with ``round(n * fraction)`` cases per split, and at least one
    case goes to a split with a non-zero fraction when the stratum holds 3 cases or more. At least one case of each
    stratum stays in train. Repeated case ids (e.g. several slices of one case) count once and always share a split;
    a case with several labels is stratified by its most common (then smallest) label.

    Args:
        case_ids: one id per item; repeats are allowed.
        labels: one label per item (same length as ``case_ids``), or ``None`` for an unstratified split.
        val_fraction: fraction of cases for validation, in [0, 1).
        test_fraction: fraction of cases for test, in [0, 1); ``val_fraction + test_fraction < 1``.
        seed: changes the assignment.

    Returns:
        case id -> split name.

    Raises:
        ValueError: bad fractions, or ``labels`` of another length than ``case_ids``.

    Example:
        >>> s = split_by_case([f"c{i}" for i in range(10)], [0] * 5 + [1] * 5, val_fraction=0.2, test_fraction=0.2)
        >>> sorted(s.values()).count("train"), sorted(s.values()).count("val"), sorted(s.values()).count("test")
        (6, 2, 2)
    """
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1 (some cases must train), got {val_fraction} + {test_fraction}."
        )
    ids = [str(c) for c in case_ids]
    if labels is not None and len(labels) != len(ids):
        raise ValueError(f"labels has {len(labels)} items but case_ids has {len(ids)}.")
    votes: dict[str, Counter] = defaultdict(Counter)
    for i, cid in enumerate(ids):
        label = None if labels is None else labels[i]
        votes[cid][None if label is None else int(label)] += 1

    def case_label(cid: str) -> int | None:
        counts = votes[cid]
        best = max(counts.values())
        tied = [k for k, v in counts.items() if v == best]
        numeric = sorted(k for k in tied if k is not None)
        return numeric[0] if numeric else None

    strata: dict[int | None, list[str]] = defaultdict(list)
    for cid in votes:
        strata[case_label(cid)].append(cid)
    result: dict[str, str] = {}
    for members in strata.values():
        members.sort(key=lambda c: (_order_key(seed, c), c))
        n = len(members)
        n_test = round(n * test_fraction)
        n_val = round(n * val_fraction)
        if n >= 3:
            n_test = max(n_test, 1 if test_fraction > 0 else 0)
            n_val = max(n_val, 1 if val_fraction > 0 else 0)
        while n_test + n_val > n - 1 and (n_test > 0 or n_val > 0):  # keep at least one training case
            if n_test >= n_val and n_test > 0:
                n_test -= 1
            else:
                n_val -= 1
        for k, cid in enumerate(members):
            if k < n_test:
                result[cid] = str(Split.TEST)
            elif k < n_test + n_val:
                result[cid] = str(Split.VAL)
            else:
                result[cid] = str(Split.TRAIN)
    return result
