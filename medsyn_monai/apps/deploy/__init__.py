"""MONAI Deploy application: synthetic images of a trained bundle, as DICOM marked synthetic.

``python -m medsyn_monai.apps.deploy -m runs/ct_lightweight/models -o out --num_samples_per_class 4``. The
application itself (:mod:`medsyn_monai.apps.deploy.app`) needs the optional extra ``[deploy]`` (MONAI Deploy App SDK
4.x); what it generates and from which model (:mod:`medsyn_monai.apps.deploy.request`) needs nothing more.
"""

from .request import BUNDLE_MODALITY, GenerationRequest, find_model_file, generate

__all__ = ["BUNDLE_MODALITY", "GenerationRequest", "find_model_file", "generate"]
