"""Data: readers (DICOM series, NIfTI, PNG, JPEG, MedMNIST arrays), dataset discovery, splits, bad-file handling,
and a cached 2D slice dataset."""

from __future__ import annotations

from medsyn_monai.data.collection import ImageCollection
from medsyn_monai.data.datasets import ImageLabelDataset, TensorPairDataset, dataset_labels, dataset_length
from medsyn_monai.data.dicom_reader import DicomSeriesReader
from medsyn_monai.data.errors import BadFileError, DataValidationError, handle_problems
from medsyn_monai.data.loader import LoadMedicalImage, LoadMedicalImaged
from medsyn_monai.data.prior_preservation import PriorPreservationDataset, prior_preservation_collate
from medsyn_monai.data.quality import DataQualityReport, degenerate_kind, exact_duplicates, image_names
from medsyn_monai.data.slice_dataset import SliceDataset
from medsyn_monai.data.split import split_by_case

__all__ = [
    "BadFileError",
    "DataValidationError",
    "handle_problems",
    "DicomSeriesReader",
    "LoadMedicalImage",
    "LoadMedicalImaged",
    "split_by_case",
    "ImageCollection",
    "SliceDataset",
    "DataQualityReport",
    "degenerate_kind",
    "exact_duplicates",
    "image_names",
    "PriorPreservationDataset",
    "prior_preservation_collate",
    "ImageLabelDataset",
    "TensorPairDataset",
    "dataset_labels",
    "dataset_length",
]
