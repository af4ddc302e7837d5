"""medsyn_monai: diffusion models for medical image synthesis, built on MONAI.

Importing the package imports its sub-packages (like ``import monai``), so bundle config expressions can use
``medsyn_monai.utils...``, ``medsyn_monai.apps...`` after a single ``$import medsyn_monai``. The building blocks
(``utils`` < ``data``, ``transforms``, ``metrics``, ``visualize`` < ``networks``, ``losses``, ``inferers`` <
``engines``, ``handlers`` < ``apps``) import one way only.
"""

__version__ = "0.2.0"

from . import (  # noqa: E402
    apps,
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
    "apps",
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
