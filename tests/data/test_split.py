"""split_by_case: deterministic, stratified splits that keep every case in one split; bad fractions."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from medsyn_monai.data import split_by_case


def test_split_by_case_deterministic_stratified_order_independent():
    ids = [f"case{i:02d}" for i in range(40)]
    labels = [0] * 30 + [1] * 10
    a = split_by_case(ids, labels, val_fraction=0.1, test_fraction=0.2, seed=3)
    order = list(range(40))
    random.Random(0).shuffle(order)
    b = split_by_case([ids[i] for i in order], [labels[i] for i in order], val_fraction=0.1, test_fraction=0.2, seed=3)
    assert a == b and set(a) == set(ids)
    per = Counter((labels[i], a[c]) for i, c in enumerate(ids))
    assert per[(0, "val")] == 3 and per[(0, "test")] == 6 and per[(1, "val")] == 1 and per[(1, "test")] == 2
    assert split_by_case(ids, labels, seed=4) != split_by_case(ids, labels, seed=3)
    small = split_by_case(["a", "b", "c"], [1, 1, 1], val_fraction=0.05, test_fraction=0.05)
    assert sorted(small.values()) == ["test", "train", "val"]  # >= 3 cases: at least one per non-zero fraction
    assert set(split_by_case(["a", "b", "c"], None, 0.0, 0.0).values()) == {"train"}


def test_split_by_case_repeated_ids_share_split_and_bad_fractions():
    ids = [f"p{i % 10}" for i in range(50)]  # 5 slices per case
    s = split_by_case(ids, None, 0.2, 0.2)
    assert len(s) == 10 and Counter(s.values()) == Counter({"train": 6, "val": 2, "test": 2})
    for bad in ({"val_fraction": -0.1}, {"test_fraction": 1.0}, {"val_fraction": 0.6, "test_fraction": 0.5}):
        with pytest.raises(ValueError):
            split_by_case(ids, None, **bad)
    with pytest.raises(ValueError, match="labels"):
        split_by_case(["a", "b"], [0])
