"""A network as JSON and back: what ``model_info.json`` records so that inference rebuilds the trained network."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from medsyn_monai.networks.nets.class_conditioned_unet import ClassConditionedDiffusionUNet
from medsyn_monai.networks.nets.classifiers import ExpertClassifier
from medsyn_monai.networks.nets.lightweight_unet import LightweightDiffusionUNet

__all__ = ["network_config", "network_from_config"]

#: the classes a config may name: a ``model_info.json`` travels with shared checkpoints, so it must not be able to
#: make the loader build arbitrary objects
NETWORKS: dict[str, type[nn.Module]] = {
    f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__name__}": cls
    for cls in (LightweightDiffusionUNet, ClassConditionedDiffusionUNet, ExpertClassifier)
}


def network_config(network: nn.Module) -> dict[str, Any]:
    """``{"_target_": "medsyn_monai.networks.nets.<Class>", **constructor arguments}`` of one of the project's networks.

    Raises:
        ValueError: a network that does not record its constructor arguments (``init_args``).

    Example:
        >>> net = LightweightDiffusionUNet(2, 1, 1, channels=(8, 16), norm_num_groups=4)
        >>> config = network_config(net)
        >>> config["_target_"], config["channels"]
        ('medsyn_monai.networks.nets.LightweightDiffusionUNet', [8, 16])
        >>> type(network_from_config(config)).__name__
        'LightweightDiffusionUNet'
    """
    args = getattr(network, "init_args", None)
    target = f"{type(network).__module__.rsplit('.', 1)[0]}.{type(network).__name__}"
    if not isinstance(args, Mapping) or target not in NETWORKS:
        raise ValueError(
            f"{type(network).__name__} is not one of the networks that record their arguments: {list(NETWORKS)}."
        )
    return {"_target_": target, **args}


def network_from_config(config: Mapping[str, Any], **overrides: Any) -> nn.Module:
    """Build the network described by :func:`network_config` (e.g. ``model_info["network"]``).

    Args:
        config: ``{"_target_": ..., **arguments}``.
        overrides: arguments replacing those of ``config`` (e.g. ``num_classes`` of a few-shot model).

    Raises:
        ValueError: no ``_target_``, or a class that is not one of :data:`NETWORKS`.
    """
    if not isinstance(config, Mapping) or "_target_" not in config:
        raise ValueError(f"a network config needs a '_target_' naming one of {list(NETWORKS)}, got {config!r}.")
    target = str(config["_target_"])
    if target not in NETWORKS:
        raise ValueError(f"unknown network {target!r} in the config; known: {list(NETWORKS)}.")
    args = {k: v for k, v in config.items() if k != "_target_"}
    return NETWORKS[target](**{**args, **overrides})
