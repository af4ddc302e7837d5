"""MONAI Label integration: a sample app serving a trained bundle as an infer task (``apps/label/app``, run in MONAI
Label's own environment) and the path from a MONAI Label datastore to a bundle's ``dataset_dir``."""

from .datastore import DATASTORE_JSON, datastore_records, write_datastore_manifest

__all__ = ["DATASTORE_JSON", "datastore_records", "write_datastore_manifest"]
