"""ImageLabelDataset, TensorPairDataset, dataset_labels and dataset_length: item types, transforms, labels without
loading images, lengths with a clear error for datasets without one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Flipd
from torch.utils.data import ConcatDataset, DataLoader, Dataset, IterableDataset, Subset

from medsyn_monai.data import dataset_length as exported_dataset_length
from medsyn_monai.data.datasets import ImageLabelDataset, TensorPairDataset, dataset_labels, dataset_length


class LabelledOnly(Dataset):
    """A dataset that knows its labels but whose images cannot be loaded (dataset_labels must not ask for them)."""

    def __init__(self, labels: list[int]) -> None:
        self.labels = torch.tensor(labels).view(-1, 1)  # (N, 1): dataset_labels flattens it

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        raise AssertionError("dataset_labels read an item although the dataset has a labels tensor")


def test_image_label_dataset_items():
    records = [
        {"image": np.arange(4, dtype=np.uint8).reshape(1, 2, 2), "label": np.int64(1), "path": "a.png"},
        {"image": torch.ones(1, 2, 2, dtype=torch.float64), "label": 0, "case_id": "p2"},
    ]
    ds = ImageLabelDataset(records)
    assert len(ds) == 2
    first = ds[0]
    assert sorted(first) == ["image", "label"]  # other keys dropped
    assert first["image"].dtype == torch.float32 and first["label"].dtype == torch.int64
    torch.testing.assert_close(first["image"], torch.tensor([[[0.0, 1.0], [2.0, 3.0]]]))
    assert first["label"].item() == 1 and ds[1]["image"].dtype == torch.float32
    assert ds.labels.tolist() == [1, 0] and ds.labels.dtype == torch.int64


def test_image_label_dataset_transform_and_batches():
    records = [{"image": torch.arange(4.0).view(1, 2, 2), "label": i % 2} for i in range(4)]
    ds = ImageLabelDataset(records, transform=Flipd("image", spatial_axis=0))
    item = ds[0]
    assert type(item) is dict and sorted(item) == ["image", "label"]
    torch.testing.assert_close(item["image"].as_tensor(), torch.tensor([[[2.0, 3.0], [0.0, 1.0]]]))
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 1, 2, 2) and batch["label"].tolist() == [0, 1, 0, 1]


def test_tensor_pair_dataset():
    images = torch.randn(3, 1, 4, 4)
    ds = TensorPairDataset(images, torch.tensor([[2.0], [0.0], [1.0]]))  # (N, 1) float labels become (N,) long
    assert len(ds) == 3 and ds.labels.tolist() == [2, 0, 1] and ds.labels.dtype == torch.int64
    assert torch.equal(ds[1]["image"], images[1]) and ds[1]["label"].item() == 0
    with pytest.raises(ValueError, match=r"^3 images but 2 labels\.$"):
        TensorPairDataset(images, torch.tensor([0, 1]))


def test_dataset_labels_of_every_kind_of_dataset():
    # a labels tensor is used as it is: no item is read
    assert dataset_labels(LabelledOnly([1, 0, 1])).tolist() == [1, 0, 1]
    # a plain list of items, and a dataset whose "labels" are not a tensor: read item by item
    items = [{"image": None, "label": torch.tensor(2)}, {"image": None, "label": np.int32(0)}, {"label": 1}]
    assert dataset_labels(items).tolist() == [2, 0, 1]
    wrapped = ImageLabelDataset([{"image": torch.zeros(1), "label": 3}])
    assert dataset_labels(wrapped).tolist() == [3]
    # ImageLabelDataset.labels takes the fast route of the data it wraps (e.g. SliceDataset.labels)
    assert ImageLabelDataset(LabelledOnly([1, 0])).labels.tolist() == [1, 0]
    # a ConcatDataset (e.g. real + generated images): the parts in order, each by its fastest route
    pair = TensorPairDataset(torch.zeros(2, 1, 2, 2), torch.tensor([1, 1]))
    concat = ConcatDataset([LabelledOnly([0]), pair, items])
    labels = dataset_labels(concat)
    assert labels.tolist() == [0, 1, 1, 2, 0, 1] and labels.dtype == torch.int64
    with pytest.raises(KeyError, match="label"):
        dataset_labels([{"image": torch.zeros(1)}])
    assert dataset_labels([]).dtype == torch.int64  # integer labels even without items


class Stream(IterableDataset):
    """An iterable-style dataset: items, but no length."""

    def __iter__(self):
        yield {"image": torch.zeros(1, 2, 2), "label": 0}


def test_dataset_length():
    assert exported_dataset_length is dataset_length  # exported from medsyn_monai.data
    assert dataset_length([{"label": 0}, {"label": 1}]) == 2 and dataset_length([]) == 0
    assert dataset_length(LabelledOnly([1, 0, 1]), "train_data") == 3
    pair = TensorPairDataset(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]))
    assert dataset_length(Subset(pair, [1]), "data") == 1
    assert dataset_length(ConcatDataset([pair, LabelledOnly([0])])) == 3
    with pytest.raises(
        TypeError, match=r"^train_data must have a length \(a map-style Dataset or a Sequence\), got Stream\.$"
    ):
        dataset_length(Stream(), "train_data")
    with pytest.raises(TypeError, match=r"^dataset must have a length .*, got generator\.$"):
        dataset_length(x for x in range(2))  # the default name
    # ImageLabelDataset needs a length of the data it wraps, and says so
    wrapped = ImageLabelDataset(Stream())
    with pytest.raises(TypeError, match=r"^data must have a length"):
        len(wrapped)
    with pytest.raises(TypeError, match=r"^data must have a length"):
        dataset_labels(Stream())
