"""From a MONAI Label datastore (its images and ``datastore_v2.json``) to a ``dataset_dir`` the bundles train on."""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medsyn_monai.utils.io import write_csv

__all__ = ["DATASTORE_JSON", "datastore_records", "write_datastore_manifest"]

#: the file in which MONAI Label's local datastore records its images, their info and labels
DATASTORE_JSON = "datastore_v2.json"
logger = logging.getLogger(__name__)


def datastore_records(studies: str | os.PathLike, class_key: str = "class") -> list[dict[str, Any]]:
    """``{"path", "label"}`` of every image of a MONAI Label datastore whose info holds ``class_key``.

    MONAI Label keeps an image's free-form info in ``datastore_v2.json`` (``objects.<id>.image.info``; clients set it
    with the datastore API). Paths are relative to ``studies``. Segmentation labels of the datastore are not images to
    learn from and are left out; images without ``class_key`` are left out with a warning.

    Raises:
        FileNotFoundError: ``studies`` holds no ``datastore_v2.json`` (start MONAI Label on it once to create it).
        ValueError: no image has ``class_key`` in its info.
    """
    studies = Path(studies)
    config = studies / DATASTORE_JSON
    if not config.is_file():
        raise FileNotFoundError(
            f"{config} does not exist: it is written by MONAI Label's local datastore (start the server once with "
            f"--studies {studies})."
        )
    store = json.loads(config.read_text())
    images_dir = studies / store.get("images_dir", ".")
    records, missing = [], []
    for image_id, entry in sorted(store.get("objects", {}).items()):
        image = entry.get("image", {})
        info = image.get("info") or {}
        path = images_dir / f"{image_id}{image.get('ext', '')}"
        if class_key not in info:
            missing.append(image_id)
            continue
        records.append({"path": os.path.relpath(path, studies), "label": str(info[class_key])})
    if not records:
        raise ValueError(
            f"no image of {config} has {class_key!r} in its info: set each image's class in MONAI Label (image info "
            f'{{"{class_key}": "<class>"}}) or give class_key the info key that holds it.'
        )
    if missing:
        logger.warning(f"{len(missing)} image(s) of {config} have no {class_key!r} and are left out: {missing[:5]}")
    return records


def write_datastore_manifest(
    studies: str | os.PathLike, output: str | os.PathLike | None = None, class_key: str = "class"
) -> Path:
    """Write the CSV manifest (``path,label``) of :func:`datastore_records` — by default ``<studies>/dataset.csv``,
    paths relative to it — which is a ``dataset_dir`` of every bundle; returns its path."""
    studies = Path(studies)
    target = Path(output) if output is not None else studies / "dataset.csv"
    records = datastore_records(studies, class_key)
    base = target.parent.resolve()
    rows = [{"path": os.path.relpath((studies / r["path"]).resolve(), base), "label": r["label"]} for r in records]
    write_csv(target, rows, ("path", "label"))
    return target


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m medsyn_monai.apps.label.datastore",
        description="Write the CSV manifest (path,label) of a MONAI Label datastore, for --dataset_dir.",
    )
    parser.add_argument("studies", help="the datastore folder (MONAI Label's --studies)")
    parser.add_argument("--output", default=None, help="CSV file (default: <studies>/dataset.csv)")
    parser.add_argument("--class_key", default="class", help="image info key holding the class (default: class)")
    args = parser.parse_args(argv)
    path = write_datastore_manifest(args.studies, args.output, args.class_key)
    print(f"wrote {path}: use it as --dataset_dir {path}")


if __name__ == "__main__":
    main()
