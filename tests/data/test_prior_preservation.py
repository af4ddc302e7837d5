"""PriorPreservationDataset and prior_preservation_collate: every batch holds instance and prior images."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from medsyn_monai.data import PriorPreservationDataset, prior_preservation_collate


def _items(n: int, value: float) -> list[dict]:
    return [{"image": torch.full((1, 4, 4), value + i), "case_id": f"c{value}_{i}"} for i in range(n)]


def test_items_labels_weights_and_length():
    ds = PriorPreservationDataset(_items(3, 0), _items(10, 100), instance_label=2, class_label=1, prior_loss_weight=0.7)
    assert len(ds) == 10  # the larger set
    item = ds[4]
    inst, prior = item["instance"], item["prior"]
    assert inst["image"][0, 0, 0].item() == 4 % 3 and prior["image"][0, 0, 0].item() == 104
    assert inst["label"].item() == 2 and prior["label"].item() == 1
    assert inst["label"].dtype == torch.long and prior["loss_weight"].dtype == torch.float32
    assert inst["loss_weight"].item() == 1.0 and prior["loss_weight"].item() == pytest.approx(0.7)
    assert not inst["is_prior"] and prior["is_prior"]
    assert len(PriorPreservationDataset(_items(3, 0), _items(10, 100), 2, 1, num_repeats=5)) == 15
    plain = PriorPreservationDataset(_items(3, 0), None, 0, 0, num_repeats=4)
    assert len(plain) == 12 and "prior" not in plain[11] and not plain.with_prior_preservation
    with pytest.raises(IndexError):
        ds[10]


def test_every_batch_holds_instance_and_prior_images():
    seen = []

    def mark(entry):  # the transform runs on every entry, after labels and weights are set
        seen.append(bool(entry["is_prior"]))
        return {**entry, "image": entry["image"] * 2}

    ds = PriorPreservationDataset(_items(4, 0), _items(9, 100), instance_label=3, class_label=0,
                                  prior_loss_weight=0.5, transform=mark)  # fmt: skip
    loader = DataLoader(ds, batch_size=4, shuffle=True, collate_fn=ds.collate_fn,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    batches = list(loader)
    assert len(batches) == 3 and sum(b["image"].shape[0] for b in batches) == 2 * 9
    for b in batches:
        n = b["image"].shape[0] // 2
        assert b["label"].tolist() == [3] * n + [0] * n
        assert b["loss_weight"].tolist() == [1.0] * n + [0.5] * n
        assert b["is_prior"].tolist() == [False] * n + [True] * n
        assert (b["image"][:n] < 2 * 100).all() and (b["image"][n:] >= 2 * 100).all()  # transformed (x2)
        assert len(b["case_id"]) == 2 * n
    assert seen.count(True) == seen.count(False) == 9


def test_collate_keeps_common_keys_and_rejects_bad_items():
    items = [{"instance": {"image": torch.zeros(1, 2, 2), "label": 1, "extra": 1},
              "prior": {"image": torch.ones(1, 2, 2), "label": 0}}]  # fmt: skip
    batch = prior_preservation_collate(items)
    assert sorted(batch) == ["image", "label"]
    with pytest.raises(ValueError, match="at least one"):
        prior_preservation_collate([])
    with pytest.raises(ValueError, match="PriorPreservationDataset items"):
        prior_preservation_collate([{"image": torch.zeros(1)}])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"instance_data": []}, "instance_data is empty"),
        ({"class_data": []}, "class_data is empty"),
        ({"prior_loss_weight": -1.0}, "loss weights"),
        ({"num_repeats": 0}, "num_repeats"),
        ({"instance_label": -1}, "non-negative"),
        ({"transform": 3}, "transform must be callable"),
    ],
)
def test_dataset_arguments(kwargs, match):
    args = {"instance_data": _items(2, 0), "class_data": _items(2, 9), "instance_label": 1, "class_label": 0}
    with pytest.raises(ValueError, match=match):
        PriorPreservationDataset(**{**args, **kwargs})
