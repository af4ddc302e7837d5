"""MONAI Label sample app: serves a trained medsyn_monai bundle as the infer task ``synthetic``.

``monailabel start_server --app medsyn_monai/apps/label/app --studies <datastore> --conf models <models folder>``
(``--conf models``: the ``models`` folder of a training run, e.g. ``runs/ct_lightweight/models``; optional
``--conf num_inference_steps 50 --conf scheduler_type ddim --conf device cuda --conf format dicom``). Runs in MONAI
Label's own environment (see the docs).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the task module beside this file

from synthetic_infer import SyntheticImageInfer  # noqa: E402

from medsyn_monai.apps.deploy.request import find_model_file  # noqa: E402
from medsyn_monai.networks.schedulers import DEFAULT_NUM_INFERENCE_STEPS, DEFAULT_SCHEDULER_TYPE  # noqa: E402

logger = logging.getLogger(__name__)


class MyApp(MONAILabelApp):
    """The app MONAI Label starts: one infer task, ``synthetic``, over the model given with ``--conf models``."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, Any]) -> None:
        if not conf.get("models"):
            raise ValueError(
                "give the trained model: --conf models <the models folder of a training run, e.g. "
                "runs/ct_lightweight/models>"
            )
        self.model_file = find_model_file(conf["models"])
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="medsyn_monai synthetic images",
            description="Synthetic images of a trained medsyn_monai diffusion bundle, marked synthetic.",
            version="1.0",
        )

    def init_infers(self) -> dict[str, InferTask]:
        steps = int(self.conf.get("num_inference_steps", DEFAULT_NUM_INFERENCE_STEPS))
        scheduler_type = str(self.conf.get("scheduler_type", DEFAULT_SCHEDULER_TYPE))
        # a DICOMweb-backed server (--studies http(s)://...) answers with DICOM by default, a local datastore NIfTI
        dicomweb = str(self.studies).startswith(("http://", "https://"))
        output_format = self.conf.get("format", "dicom" if dicomweb else "nifti")
        return {
            "synthetic": SyntheticImageInfer(
                self.model_file, steps, self.conf.get("device", "cuda"), output_format, scheduler_type
            )  # fmt: skip
        }
