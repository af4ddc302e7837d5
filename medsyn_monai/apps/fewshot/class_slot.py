"""Few-shot fine-tuning of a class-conditional diffusion model: classes of the instance, base weights, new slot."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medsyn_monai.networks.nets import network_from_config
from medsyn_monai.utils.io import file_sha256, load_torch_file
from medsyn_monai.utils.model_info import load_model_info

__all__ = ["FewShotSetup", "add_class_slot", "class_embedding_keys"]


def add_class_slot(weight: torch.Tensor, parent_label: int, has_null: bool = True) -> torch.Tensor:
    """Grow a class-embedding table by one class whose row starts as a copy of the parent class's row.

    With a null ("no class") row last (``has_null``; the classifier-free guidance convention: ``K + 1`` rows for
    ``K`` classes, null label ``K``), the new class takes index ``K`` and the null row moves to index ``K + 1``, so
    the null label stays last (``num_classes + 1`` rows, null label ``num_classes``). Without a null row (``K``
    rows) the new row is appended. The rows of the existing classes keep their indices and values.

    Args:
        weight: ``(rows, dim)`` embedding table.
        parent_label: index of the class whose row initialises the new class.
        has_null: whether the last row is the null label.

    Returns:
        the ``(rows + 1, dim)`` table (a new tensor).

    Raises:
        ValueError: not a 2-D table, or ``parent_label`` not a class row (the null row is not a class).

    Example:
        >>> import torch
        >>> w = torch.tensor([[0.0], [1.0], [9.0]])  # classes 0, 1 and the null row
        >>> add_class_slot(w, parent_label=1).flatten().tolist()
        [0.0, 1.0, 1.0, 9.0]
    """
    if weight.ndim != 2:
        raise ValueError(f"expected a (rows, dim) embedding table, got shape {tuple(weight.shape)}.")
    num_classes = weight.shape[0] - (1 if has_null else 0)
    if not 0 <= int(parent_label) < num_classes:
        raise ValueError(f"parent_label {parent_label} is not one of the table's {num_classes} class rows.")
    rows = [weight[:num_classes], weight[int(parent_label)][None]]
    if has_null:
        rows.append(weight[num_classes:])
    return torch.cat(rows).clone()


def class_embedding_keys(network: nn.Module, num_rows: int) -> list[str]:
    """``state_dict`` keys of the network's class tables: every ``nn.Embedding`` with ``num_rows`` rows.

    Covers the label embedding of :class:`~medsyn_monai.networks.nets.LightweightDiffusionUNet`, MONAI's
    ``DiffusionModelUNet`` (``class_embedding``) and :class:`~medsyn_monai.networks.nets.ClassConditionedDiffusionUNet`
    in both conditioning modes (``backbone.class_embedding`` or the cross-attention ``label_embedding``).

    Example:
        >>> class_embedding_keys(nn.Sequential(nn.Linear(2, 2), nn.Embedding(3, 4)), 3)
        ['1.weight']
    """
    return [f"{name}.weight" for name, m in network.named_modules() if isinstance(m, nn.Embedding)
            and m.num_embeddings == num_rows]  # fmt: skip


def _load_state(path: Path, ckpt_key: str | None) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"no base model at {path}: train the class-conditional base model first (the bundle's train.json with the "
            "same output_dir), or pass --base_ckpt to its models/model.pt."
        )
    state = load_torch_file(path, "base model")
    if isinstance(state, Mapping) and "trainer" in state:  # a full training checkpoint
        key = ckpt_key if ckpt_key in state else "network"
        if key not in state:
            raise KeyError(f"{path} holds {sorted(state)}, none of which is {ckpt_key!r}/'network'.")
        state = state[key]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} does not hold a state_dict.")
    return dict(state)


class FewShotSetup:
    """The classes of a few-shot fine-tuning and the base weights it starts from (DreamBooth for class labels).

    The base model is a class-conditional diffusion model trained by a bundle (``base_ckpt`` =
    ``models/model.pt``, with ``model_info.json`` beside it). The instance images either

    - get a **new class slot** (``instance_class`` is not a base class name): ``class_names`` gains
      ``instance_class`` at index ``K`` (``K`` = base classes); every class table of the network (label embeddings)
      grows by one row initialised from the parent class's row (:func:`add_class_slot`); with the classifier-free
      guidance convention the null row moves from ``K`` to ``K + 1``, so after fine-tuning
      ``null_class_label = num_classes`` still holds. The existing classes keep their indices and rows;
    - or fine-tune an **existing class** (``instance_class`` is a base class name): classes and tables are unchanged.

    ``parent_class`` is the class whose prior images preserve the prior (by default ``instance_class`` itself when it
    exists; required for a new slot). :meth:`load_base_weights` loads the base weights into a network built for
    :attr:`num_classes` classes; :meth:`model_info` gives the ``model_info.json`` of the fine-tuned model.

    Args:
        base_ckpt: base weights: ``models/model.pt`` (EMA weights) or a full ``checkpoint.pt`` (``ckpt_key``).
        instance_class: class name of the instance images (new or existing).
        parent_class: base class of the prior images (default: ``instance_class`` when it is a base class).
        ckpt_key: entry of a full checkpoint to load (``"ema"``, falling back to ``"network"``).

    Raises:
        FileNotFoundError: no ``model_info.json`` beside ``base_ckpt``.
        ValueError: unconditional base model, empty ``instance_class``, unknown ``parent_class`` or none for a new
            slot.

    Example:
        >>> import tempfile
        >>> from medsyn_monai.utils import save_model_info
        >>> d = tempfile.mkdtemp()
        >>> _ = save_model_info(d, class_names=["melanoma", "nevus"], num_classes=2, null_class_label=2)
        >>> s = FewShotSetup(Path(d) / "model.pt", instance_class="blue_nevus", parent_class="nevus")
        >>> s.class_names, s.instance_label, s.parent_label, s.null_class_label, s.new_slot
        (['melanoma', 'nevus', 'blue_nevus'], 2, 1, 3, True)
    """

    def __init__(
        self,
        base_ckpt: str | Path,
        instance_class: str,
        parent_class: str | None = None,
        ckpt_key: str | None = "ema",
    ) -> None:
        self.base_ckpt = Path(base_ckpt)
        self.base_info = load_model_info(self.base_ckpt)
        base_names = self.base_info.get("class_names")
        if not base_names:
            raise ValueError(
                f"the base model {self.base_ckpt} is unconditional (no class_names in its model_info.json): few-shot "
                "fine-tuning with a class slot needs a class-conditional base model."
            )
        if not isinstance(instance_class, str) or not instance_class.strip():
            raise ValueError(f"instance_class must be a non-empty class name, got {instance_class!r}.")
        self.base_class_names: list[str] = [str(c) for c in base_names]
        self.base_null_class_label: int | None = self.base_info.get("null_class_label")
        if self.base_null_class_label is not None and int(self.base_null_class_label) != len(base_names):
            raise ValueError(
                f"the base model's null_class_label {self.base_null_class_label} is not its number of classes "
                f"{len(base_names)}: only the 'null label last' convention is supported."
            )
        instance_class = instance_class.strip()  # " nevus" from a command line is the class "nevus"
        if isinstance(parent_class, str):
            parent_class = parent_class.strip()
        self.instance_class = instance_class
        self.new_slot = instance_class not in self.base_class_names
        if parent_class is None:
            if self.new_slot:
                raise ValueError(
                    f"instance_class {instance_class!r} is a new class: set parent_class to the base class it belongs "
                    f"to (one of {self.base_class_names}); its prior images preserve that class."
                )
            parent_class = instance_class
        if parent_class not in self.base_class_names:
            raise ValueError(f"parent_class {parent_class!r} is not a class of the base model {self.base_class_names}.")
        self.parent_class = str(parent_class)
        self.class_names = self.base_class_names + ([instance_class] if self.new_slot else [])
        self.num_classes = len(self.class_names)
        self.instance_label = self.class_names.index(instance_class)
        self.parent_label = self.base_class_names.index(self.parent_class)
        self.null_class_label: int | None = None if self.base_null_class_label is None else self.num_classes
        self.ckpt_key = ckpt_key
        self.logger = logging.getLogger(__name__)

    @property
    def num_class_embeds(self) -> int:
        """Rows of the fine-tuned network's class tables (``num_classes + 1`` with a null label)."""
        return self.num_classes + (0 if self.null_class_label is None else 1)

    def load_base_weights(self, network: nn.Module) -> nn.Module:
        """Load the base weights into ``network`` (built for :attr:`num_classes` classes) and return it.

        For a new slot, every ``nn.Embedding`` of ``network`` with :attr:`num_class_embeds` rows is a class table:
        its base table is grown by :func:`add_class_slot` before loading. Loading is strict.

        Raises:
            FileNotFoundError: missing ``base_ckpt``.
            ValueError: a new slot but the network has no class table of the expected size.
            RuntimeError: the base weights do not fit the network (other architecture settings).
        """
        state = _load_state(self.base_ckpt, self.ckpt_key)
        if self.new_slot:
            keys = class_embedding_keys(network, self.num_class_embeds)
            if not keys:
                raise ValueError(
                    f"the network has no class embedding with {self.num_class_embeds} rows: build it for "
                    f"{self.num_classes} classes (num_classes of FewShotSetup) to add the {self.instance_class!r} slot."
                )
            for key in keys:
                if key not in state:
                    raise RuntimeError(f"{self.base_ckpt} has no {key!r}: it does not fit the network of this config.")
                state[key] = add_class_slot(state[key], self.parent_label, has_null=self.null_class_label is not None)
            self.logger.info(
                f"new class slot {self.instance_label} ({self.instance_class!r}) initialised from class "
                f"{self.parent_label} ({self.parent_class!r}) in {keys}"
            )
        try:
            network.load_state_dict(state)
        except RuntimeError as e:
            raise RuntimeError(
                f"the base weights {self.base_ckpt} do not fit the network of this config ({e}); build it with the "
                "base model's settings (model_info.json)."
            ) from e
        return network

    def network(self) -> nn.Module:
        """The fine-tuned model's network: the base model's (``model_info.json`` ``network`` entry) built for
        :attr:`num_classes` classes, with the base weights loaded (:meth:`load_base_weights`).

        Raises:
            ValueError: a base ``model_info.json`` without a ``network`` entry (written by an older release).
        """
        config = self.base_info.get("network")
        if not isinstance(config, Mapping):
            raise ValueError(
                f"the model_info.json of {self.base_ckpt} has no 'network' entry (an older release wrote it): train "
                "the base model again with this release."
            )
        overrides = {"num_classes": self.num_classes} if "num_classes" in config else {}
        return self.load_base_weights(network_from_config(config, **overrides))

    def load_base_entry(
        self, module: nn.Module | None, name: str = "projection", checkpoint_name: str = "checkpoint.pt"
    ) -> bool:
        """Load entry ``name`` of the base run's full checkpoint (beside ``base_ckpt``) into ``module``, if present.

        E.g. the feature-alignment projection of a base model trained with feature alignment, so that few-shot
        fine-tuning with alignment continues from it instead of a random projection.

        Returns:
            whether the entry was found and loaded (``False``: ``module`` is ``None``, no checkpoint or no such entry;
            ``module`` unchanged).

        Raises:
            RuntimeError: the entry does not fit ``module``.
        """
        path = self.base_ckpt.parent / checkpoint_name
        if module is None or not path.is_file():
            return False
        state = load_torch_file(path, "base checkpoint")
        if not isinstance(state, Mapping) or name not in state:
            return False
        try:
            module.load_state_dict(state[name])
        except RuntimeError as e:
            raise RuntimeError(f"the {name!r} of {path} does not fit this config's {name} ({e}).") from e
        self.logger.info(f"{name} initialised from {path}")
        return True

    def model_info(self, **fewshot: Any) -> dict[str, Any]:
        """``model_info.json`` content of the fine-tuned model: the base model's, with the new classes.

        Args:
            fewshot: extra entries of the ``"fewshot"`` record (e.g. ``prior_loss_weight``, ``num_class_images``).
        """
        info = dict(self.base_info)
        network = info.get("network")
        if isinstance(network, Mapping) and "num_classes" in network:  # the network of the fine-tuned model
            info["network"] = {**network, "num_classes": self.num_classes}
        info.update(
            {
                "class_names": self.class_names,
                "num_classes": self.num_classes,
                "null_class_label": self.null_class_label,
                "fewshot": {
                    "base_ckpt": self.base_ckpt.name,  # no path: outputs hold no location of the inputs
                    "base_sha256": file_sha256(self.base_ckpt),
                    "base_class_names": self.base_class_names,
                    "instance_class": self.instance_class,
                    "instance_label": self.instance_label,
                    "parent_class": self.parent_class,
                    "parent_label": self.parent_label,
                    "new_slot": self.new_slot,
                    **fewshot,
                },
            }
        )
        return info
