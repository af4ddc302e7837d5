"""String enumerations for every option a config may name.

Each enum is a :class:`monai.utils.StrEnum`, so configs can pass the plain string
(``"all"``, ``"soft_tissue"``) and code compares against the member.
"""

from __future__ import annotations

from monai.utils import StrEnum

__all__ = [
    "ExpertNetwork",
    "TimeInjection",
    "DiffusionArchitecture",
    "ClassConditioning",
    "CTWindowPreset",
    "LossType",
    "PredictionType",
    "SchedulerType",
    "TimestepSpacing",
    "SourceFormat",
    "DatasetLayout",
    "Split",
    "DemoKind",
    "ScaleSource",
    "HistogramUnit",
    "ExpertInput",
    "AlignmentProjection",
    "AlignmentDirection",
    "FeaturePoint",
    "ResumeMode",
    "ExportFormat",
    "SubsetEpochs",
]


class TimeInjection(StrEnum):
    """Where :class:`~medsyn_monai.networks.nets.LightweightDiffusionUNet` adds the time embedding.

    - ``ALL``: after every convolution of the encoder, bottleneck and decoder (proposed).
    - ``FIRST``: once, after the first convolution at the input.
    - ``ENCODER``: after every convolution of the encoder and bottleneck, none in the decoder.
    """

    ALL = "all"
    FIRST = "first"
    ENCODER = "encoder"


class DiffusionArchitecture(StrEnum):
    """Backbone of :class:`~medsyn_monai.networks.nets.ClassConditionedDiffusionUNet`.

    - ``MONAI``: MONAI's :class:`~monai.networks.nets.DiffusionModelUNet` (residual blocks, attention).
    - ``LIGHTWEIGHT``: the project's attention-free :class:`~medsyn_monai.networks.nets.LightweightDiffusionUNet`.
    """

    MONAI = "monai"
    LIGHTWEIGHT = "lightweight"


class ClassConditioning(StrEnum):
    """How :class:`~medsyn_monai.networks.nets.ClassConditionedDiffusionUNet` feeds the class label to the backbone.

    - ``EMBEDDING``: a learned label embedding added to the time embedding (``num_class_embeds``).
    - ``CROSS_ATTENTION``: a learned label token that cross-attention blocks attend to (``context``).
    """

    EMBEDDING = "embedding"
    CROSS_ATTENTION = "cross_attention"


class CTWindowPreset(StrEnum):
    """Named CT display windows (level, width in HU) used by :class:`~medsyn_monai.transforms.CTWindow`.

    ``DISPLAY`` is not a HU window: it is for CT slices that were already windowed and exported as 8/16-bit display
    grey levels (PNG/JPEG, e.g. MedNIST's CT classes); their stored range ``[0, 2**bits - 1]`` is scaled as is.
    """

    SOFT_TISSUE = "soft_tissue"
    LUNG = "lung"
    BONE = "bone"
    BRAIN = "brain"
    DISPLAY = "display"


class LossType(StrEnum):
    """Pixel loss between the network output and the diffusion target."""

    L2 = "l2"
    L1 = "l1"


class PredictionType(StrEnum):
    """What the diffusion network predicts (same strings as MONAI's schedulers)."""

    EPSILON = "epsilon"
    V_PREDICTION = "v_prediction"
    SAMPLE = "sample"


class SchedulerType(StrEnum):
    """Samplers of a trained model (``scheduler_type`` of the bundle configs).

    - ``DDPM``: ancestral sampling through all ``num_train_timesteps`` steps (Ho et al. 2020).
    - ``DDIM``: first-order deterministic steps (Song et al. 2021), any number of steps.
    - ``DPMPP_2M`` / ``DPMPP_3M``: DPM-Solver++ multistep, second / third order (Lu et al. 2022).
    - ``DPMPP_2M_SDE``: SDE-DPM-Solver++ 2M, the stochastic second-order multistep solver (Lu et al. 2022).
    - ``UNIPC``: UniPC predictor-corrector, B(h) = e^h - 1, second order (Zhao et al. 2023).
    """

    DDPM = "ddpm"
    DDIM = "ddim"
    DPMPP_2M = "dpmpp_2m"
    DPMPP_3M = "dpmpp_3m"
    DPMPP_2M_SDE = "dpmpp_2m_sde"
    UNIPC = "unipc"


class TimestepSpacing(StrEnum):
    """Where the ``n`` sampling time steps lie between ``T - 1`` and ``0``
    (:func:`~medsyn_monai.networks.schedulers.sampling_timesteps`).

    - ``UNIFORM``: evenly in time (DDIM; DPM-Solver's "time uniform").
    - ``QUADRATIC``: evenly in the square root of time, dense near the clean end (DDIM's CIFAR-10 setting).
    - ``LOGSNR``: evenly in the half log signal-to-noise ratio ``lambda`` (DPM-Solver's "logSNR").
    - ``KARRAS``: evenly in ``sigma^(1/7)`` with ``sigma = sqrt((1 - alpha_bar) / alpha_bar)`` (Karras et al. 2022).
    """

    UNIFORM = "uniform"
    QUADRATIC = "quadratic"
    LOGSNR = "logsnr"
    KARRAS = "karras"


class SourceFormat(StrEnum):
    """File format an image was read from; stored in the image meta data under ``"source_format"``."""

    DICOM = "dicom"
    DICOM_SERIES = "dicom_series"
    NIFTI = "nifti"
    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"
    NPZ = "npz"


class DatasetLayout(StrEnum):
    """How a ``dataset_dir`` is organised (detected by :class:`~medsyn_monai.data.ImageCollection`)."""

    CLASS_FOLDERS = "class_folders"
    CSV = "csv"
    NPZ = "npz"
    SERIES_FOLDERS = "series_folders"
    LOOSE_FILES = "loose_files"


class Split(StrEnum):
    """Data splits."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class ScaleSource(StrEnum):
    """Where :class:`~medsyn_monai.transforms.ScaleToRange` takes the source intensity range from.

    - ``AUTO``: ``[0, 2**bit_depth - 1]`` from the meta data key ``"bit_depth"`` when present, else ``MINMAX``.
    - ``MINMAX``: the image's own minimum and maximum.
    - ``DTYPE``: the full range of the input's integer dtype (e.g. ``[0, 255]`` for ``uint8``).
    """

    AUTO = "auto"
    MINMAX = "minmax"
    DTYPE = "dtype"


class DemoKind(StrEnum):
    """Synthetic demo collections written by :func:`~medsyn_monai.apps.demo.create_demo`.

    - ``CT``: digital abdominal CT phantom, one DICOM series per case, classes ``normal`` / ``lesion``.
    - ``CELLS``: Giemsa-stained red blood cell crops (RGB PNG), classes ``parasitized`` / ``uninfected``.
    - ``CXR``: grey chest-radiograph-like phantom (PNG), classes ``normal`` / ``pneumonia``.
    - ``HISTO``: grey histology-like texture tiles (PNG), 8 colorectal tissue classes (synthetic textures).
    """

    CT = "ct"
    CELLS = "cells"
    CXR = "cxr"
    HISTO = "histo"
    DERM = "derm"  # dermoscopy-like skin lesions (RGB PNG): melanoma / nevus, plus blue-naevus few-shot instances


class HistogramUnit(StrEnum):
    """What :func:`~medsyn_monai.metrics.intensity_histogram_test` bins.

    - ``IMAGE``: one value per image, its mean intensity (samples are independent images).
    - ``PIXEL``: every pixel value (huge, strongly correlated samples; p-values are not meaningful).
    """

    IMAGE = "image"
    PIXEL = "pixel"


class ExpertNetwork(StrEnum):
    """MONAI classification networks wrapped by :class:`~medsyn_monai.networks.nets.ExpertClassifier`."""

    RESNET18 = "resnet18"
    RESNET50 = "resnet50"
    DENSENET121 = "densenet121"
    VIT = "vit"


class ExpertInput(StrEnum):
    """Which images :class:`~medsyn_monai.losses.FeatureAlignmentLoss` shows the frozen expert classifier.

    - ``NOISY``: the diffusion network's input ``x_t`` (the feature-aligned diffusion seed method).
    - ``CLEAN``: the clean training images ``x_0`` (as in REPA, Yu et al. 2024).
    """

    NOISY = "noisy"
    CLEAN = "clean"


class AlignmentProjection(StrEnum):
    """Trainable projection of :class:`~medsyn_monai.losses.FeatureAlignmentLoss`.

    - ``LINEAR``: one linear layer (applied at every location of spatial features).
    - ``MLP``: three linear layers with SiLU activations (REPA's projector; applied at every location of spatial
      features).
    - ``CONV``: one 3x3 convolution of the feature map (iREPA's projector, Singh et al., "What matters for
      Representation Alignment: Global Information or Spatial Structure?"); spatial alignment only.
    """

    LINEAR = "linear"
    MLP = "mlp"
    CONV = "conv"


class AlignmentDirection(StrEnum):
    """Which features :class:`~medsyn_monai.losses.FeatureAlignmentLoss` projects onto the other's space.

    - ``EXPERT_TO_DIFFUSION``: expert features are projected to the diffusion feature size (the seed's code).
    - ``DIFFUSION_TO_EXPERT``: diffusion features are projected to the expert feature size (REPA).
    """

    EXPERT_TO_DIFFUSION = "expert_to_diffusion"
    DIFFUSION_TO_EXPERT = "diffusion_to_expert"


class FeaturePoint(StrEnum):
    """Named points of a diffusion U-Net whose features are aligned (``align_module``), resolved for each network by
    :class:`~medsyn_monai.networks.utils.FeatureHook` (a module of that very name takes precedence).

    - ``DOWN_PATH``: the end of the down path, the input of the middle stage (the default point,
      :func:`~medsyn_monai.networks.utils.feature_point`).
    - ``MIDDLE_BLOCK``: the output of the middle (bottleneck) stage (:func:`~medsyn_monai.networks.utils.
      middle_point`), the alignment point of U-REPA (Tian et al. 2025, "U-REPA: Aligning Diffusion U-Nets to ViTs").
    """

    DOWN_PATH = "down_path"
    MIDDLE_BLOCK = "middle_block"


class ResumeMode(StrEnum):
    """What a training run does with an existing ``checkpoint.pt`` (``--resume``; ``true``/``false`` spellings too).

    - ``AUTO``: resume when the recorded settings equal the current ones, else stop and list the differences.
    - ``OVERRIDE``: resume with the current settings even where they differ (the differences are logged).
    - ``RESTART``: start over; the previous run's outputs are moved aside, never deleted.
    """

    AUTO = "auto"
    OVERRIDE = "override"
    RESTART = "restart"


class ExportFormat(StrEnum):
    """File formats of :class:`~medsyn_monai.apps.export.SyntheticExporter`.

    - ``PNG``: 8-bit (or 16-bit grey-scale with ``png_bits=16``) PNG.
    - ``NIFTI``: float32 NIfTI in the training intensity range (e.g. HU for CT).
    - ``DICOM``: Secondary Capture marked synthetic (:class:`~medsyn_monai.apps.export.SyntheticDicomWriter`).
    - ``ALL``: the three of them.
    """

    PNG = "png"
    NIFTI = "nifti"
    DICOM = "dicom"
    ALL = "all"


class SubsetEpochs(StrEnum):
    """How many epochs the runs on a real subset of fraction ``f`` train in
    :class:`~medsyn_monai.apps.evaluation.ClassifierUtilityStudy` (``real_only_<p>`` and the fine-tuning on ``p`` %).

    - ``SAME``: the epochs of the runs on the whole set: ``f`` times their optimisation steps.
    - ``SCALED``: ``max(epochs, round(epochs / f))``: about as many images seen as on the whole set (the fair baseline
      for small fractions, at the cost of ``1 / f`` validation passes).
    """

    SAME = "same"
    SCALED = "scaled"
