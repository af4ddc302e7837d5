"""medsyn_monai: diffusion models for medical image synthesis, built on MONAI.

Importing the package imports its sub-packages (like ``import monai``), so bundle config expressions can use
``medsyn_monai.utils...``, ``medsyn_monai.transforms...`` after a single ``$import medsyn_monai``.
"""

__version__ = "0.1.0"

from . import (  # noqa: E402
    data,
    engines,
    handlers,
    inferers,
    losses,
    metrics,
    networks,
    transforms,
    utils,
    visualize,
)

__all__ = [
    "__version__",
    "data",
    "engines",
    "handlers",
    "inferers",
    "losses",
    "metrics",
    "networks",
    "transforms",
    "utils",
    "visualize",
]
