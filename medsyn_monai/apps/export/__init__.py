"""Hand synthetic images on: PNG, NIfTI and DICOM marked synthetic, with a provenance manifest."""

from .dicom import SYNTHETIC_CONVERSION_TYPE, SyntheticDicomWriter
from .exporter import MANIFEST_FIELDS, SyntheticExporter

__all__ = ["MANIFEST_FIELDS", "SYNTHETIC_CONVERSION_TYPE", "SyntheticDicomWriter", "SyntheticExporter"]
