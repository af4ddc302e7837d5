"""A small JSON file beside the trained weights that records what inference needs to know."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medsyn_monai.utils.io import write_json

__all__ = ["MODEL_INFO_NAME", "save_model_info", "load_model_info"]

MODEL_INFO_NAME = "model_info.json"


def save_model_info(models_dir: str | Path, **info: Any) -> Path:
    """Write ``models_dir/model_info.json`` atomically (class names, image size, scheduler settings, ...).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> load_model_info(save_model_info(d, image_size=32, class_names=["a", "b"]))["class_names"]
        ['a', 'b']
    """
    return write_json(Path(models_dir) / MODEL_INFO_NAME, info)


def load_model_info(path: str | Path) -> dict[str, Any]:
    """Read ``model_info.json``; ``path`` may be the file, its folder, or a weights file in that folder.

    Raises:
        FileNotFoundError: with a hint to run the training config first.
    """
    path = Path(path)
    if path.is_dir() or (not path.exists() and not path.suffix):  # a models/ folder, present or not
        path = path / MODEL_INFO_NAME
    elif path.suffix != ".json":
        path = path.parent / MODEL_INFO_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: train a model first (configs/train.json writes it next to the weights), "
            "or point ckpt_path at a models/ folder produced by training."
        )
    with open(path) as f:
        return json.load(f)
