"""apps.label.datastore: a MONAI Label datastore (``datastore_v2.json`` as MONAI Label 0.8 writes it) becomes a CSV
manifest that the bundles' loader reads as a labelled data set; clear errors without the JSON or without classes."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medsyn_monai.apps.label import DATASTORE_JSON, datastore_records, write_datastore_manifest
from medsyn_monai.apps.label.datastore import main
from medsyn_monai.data import ImageCollection


def _datastore(root, classes):
    objects = {}
    for i, cls in enumerate(classes):
        image_id = f"case{i:03d}"
        nib.save(nib.Nifti1Image(np.full((16, 16), float(i), np.float32), np.eye(4)), root / f"{image_id}.nii.gz")
        info = {"ts": 1796231006, "name": f"{image_id}.nii.gz"}
        if cls is not None:
            info["class"] = cls
        objects[image_id] = {"image": {"ext": ".nii.gz", "info": info}, "labels": {}}
    (root / "labels" / "final").mkdir(parents=True)
    store = {"name": "new-dataset", "description": "New Dataset", "images_dir": ".", "labels_dir": "labels",
             "objects": objects}  # fmt: skip
    (root / DATASTORE_JSON).write_text(json.dumps(store))
    return root


def test_manifest_reads_back_as_labelled_data(tmp_path, caplog):
    studies = _datastore(tmp_path, ["normal", "lesion"] * 4 + [None])
    records = datastore_records(studies)
    assert len(records) == 8 and records[0] == {"path": "case000.nii.gz", "label": "normal"}
    assert "1 image(s)" in caplog.text and "case008" in caplog.text
    manifest = write_datastore_manifest(studies)
    assert manifest == studies / "dataset.csv"
    collection = ImageCollection(manifest, val_fraction=0.0, test_fraction=0.0)
    assert collection.class_names == ["lesion", "normal"] and len(collection.data("train")) == 8
    out = tmp_path / "elsewhere" / "data.csv"
    main([str(studies), "--output", str(out)])
    assert ImageCollection(out, val_fraction=0.0, test_fraction=0.0).class_names == ["lesion", "normal"]


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="start the server once"):
        datastore_records(tmp_path)
    _datastore(tmp_path, [None, None])
    with pytest.raises(ValueError, match="no image of .* has 'class'"):
        datastore_records(tmp_path)
