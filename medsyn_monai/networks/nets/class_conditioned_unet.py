"""A class-conditional diffusion U-Net whose label enters either as an embedding or as a cross-attention token.

Two ways of telling a diffusion U-Net which class to draw are common:

- the label's learned embedding is *added to the time embedding* (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs
  on Image Synthesis"; ``num_class_embeds`` of MONAI's :class:`~monai.networks.nets.DiffusionModelUNet`);
- the label becomes a learned *token that cross-attention layers attend to* (Rombach et al. 2022, "High-Resolution
  Image Synthesis with Latent Diffusion Models", where the context is a text or class-token sequence).

:class:`ClassConditionedDiffusionUNet` offers both for MONAI's U-Net and for the project's
:class:`~medsyn_monai.networks.nets.LightweightDiffusionUNet`, with the classifier-free guidance convention of the
project (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance"): the label tables have ``num_classes + 1`` rows,
the last one (index ``num_classes``) being the "no class" (null) label that condition dropout trains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from monai.networks.nets import DiffusionModelUNet
from torch import nn

from medsyn_monai.networks.nets.lightweight_unet import LightweightDiffusionUNet
from medsyn_monai.networks.utils import feature_point, middle_point
from medsyn_monai.utils.cli import as_bool
from medsyn_monai.utils.enums import ClassConditioning, DiffusionArchitecture

__all__ = ["ClassConditionedDiffusionUNet"]

_BACKBONES: dict[str, type[nn.Module]] = {
    DiffusionArchitecture.MONAI: DiffusionModelUNet,
    DiffusionArchitecture.LIGHTWEIGHT: LightweightDiffusionUNet,
}
_RESERVED = ("num_class_embeds", "with_conditioning", "cross_attention_dim")


class ClassConditionedDiffusionUNet(nn.Module):
    """Diffusion U-Net conditioned on a class label by a label embedding or by a cross-attention label token.

    - ``class_conditioning="embedding"``: the backbone is built with ``num_class_embeds = num_classes + 1`` and
      receives ``class_labels``; its label embedding is added to the time embedding everywhere the time embedding
      acts.
    - ``class_conditioning="cross_attention"``: the backbone is built with ``with_conditioning=True`` and
      ``cross_attention_dim`` and has no class embedding; the wrapper's own ``label_embedding``
      (``nn.Embedding(num_classes + 1, cross_attention_dim)``) turns each label into one token ``(B, 1, D)`` that is
      passed as ``context`` to the backbone's cross-attention blocks (MONAI's ``SpatialTransformer``; for MONAI's
      U-Net at the levels of ``attention_levels`` and in the middle block, for the lightweight U-Net at its
      ``attention_levels``, by default the bottleneck).

    In both modes label ``num_classes`` (:attr:`null_class_label`) is the null label used for classifier-free
    guidance: train with condition dropout (``cond_drop_prob`` of the trainer) and sample with
    :class:`~medsyn_monai.inferers.ConditionalDiffusionInferer` and ``null_class_label=net.null_class_label``.
    The forward signature is MONAI's, so trainers, inferers and samplers accept it like any diffusion U-Net.

    Args:
        architecture: ``"monai"`` (:class:`~monai.networks.nets.DiffusionModelUNet`) or ``"lightweight"``
            (:class:`~medsyn_monai.networks.nets.LightweightDiffusionUNet`).
        class_conditioning: ``"embedding"`` or ``"cross_attention"`` (see above).
        num_classes: number of real classes (>= 1); label tables get ``num_classes + 1`` rows.
        cross_attention_dim: size of the label token in ``"cross_attention"`` mode.
        network_kwargs: arguments of the backbone (``spatial_dims``, ``in_channels``, ``out_channels``,
            ``channels``, ...; ``spatial_dims`` defaults to 2, ``in_channels`` / ``out_channels`` to 1). The
            conditioning arguments ``num_class_embeds``, ``with_conditioning`` and ``cross_attention_dim`` are set by
            the wrapper and must not be given. For MONAI's U-Net in ``"cross_attention"`` mode, ``attention_levels``
            chooses where the label token is attended to (the middle block always attends); left out (or ``None``)
            with MONAI's U-Net it is attention at the lowest resolution only, ``(False, ..., False, True)``.

    Raises:
        ValueError: unknown ``architecture`` or ``class_conditioning``, ``num_classes < 1``, ``cross_attention_dim <
            1``, ``network_kwargs`` that are not a mapping or that set a conditioning argument, and the backbone's own
            argument errors.

    Example:
        >>> import torch
        >>> net = ClassConditionedDiffusionUNet("lightweight", "cross_attention", num_classes=2, cross_attention_dim=16,
        ...                                     network_kwargs={"channels": (8, 16), "norm_num_groups": 4})
        >>> x = torch.randn(3, 1, 8, 8)
        >>> net(x, torch.tensor([1, 10, 100]), class_labels=torch.tensor([0, 1, net.null_class_label])).shape
        torch.Size([3, 1, 8, 8])
        >>> net.null_class_label, hasattr(net.backbone, "class_embedding") and net.backbone.class_embedding is not None
        (2, False)
    """

    def __init__(
        self,
        architecture: str | DiffusionArchitecture = DiffusionArchitecture.LIGHTWEIGHT,
        class_conditioning: str | ClassConditioning = ClassConditioning.EMBEDDING,
        num_classes: int = 2,
        cross_attention_dim: int = 64,
        network_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if str(architecture) not in [a.value for a in DiffusionArchitecture]:
            options = [a.value for a in DiffusionArchitecture]
            raise ValueError(f"architecture must be one of {options}, got {architecture!r}.")
        if str(class_conditioning) not in [c.value for c in ClassConditioning]:
            options = [c.value for c in ClassConditioning]
            raise ValueError(f"class_conditioning must be one of {options}, got {class_conditioning!r}.")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"num_classes must be a positive integer (the number of real classes), got {num_classes!r}; None "
                "usually means the data set is unlabelled, but this network is class-conditional."
            )
        if isinstance(cross_attention_dim, bool) or not isinstance(cross_attention_dim, int) or cross_attention_dim < 1:
            raise ValueError(f"cross_attention_dim must be a positive integer, got {cross_attention_dim!r}.")
        if network_kwargs is not None and not isinstance(network_kwargs, Mapping):
            raise ValueError(f"network_kwargs must be a mapping of backbone arguments, got {type(network_kwargs)}.")
        kwargs = dict(network_kwargs or {})
        reserved = [k for k in _RESERVED if k in kwargs]
        if reserved:
            raise ValueError(
                f"network_kwargs must not set {reserved}: ClassConditionedDiffusionUNet sets them from "
                "class_conditioning, num_classes and cross_attention_dim."
            )
        kwargs.setdefault("spatial_dims", 2)
        kwargs.setdefault("in_channels", 1)
        kwargs.setdefault("out_channels", kwargs["in_channels"])
        levels = kwargs.get("attention_levels")
        if levels is not None:  # MONAI's U-Net takes real booleans only
            kwargs["attention_levels"] = [as_bool(a, "attention_levels") for a in levels]
        elif architecture == DiffusionArchitecture.MONAI and "channels" in kwargs:
            kwargs["attention_levels"] = [False] * (len(kwargs["channels"]) - 1) + [True]  # attention at the bottom
        #: the constructor arguments (JSON-ready), from which :func:`~medsyn_monai.networks.nets.network_from_config`
        #: rebuilds the network
        self.init_args = {
            "architecture": str(architecture),
            "class_conditioning": str(class_conditioning),
            "num_classes": int(num_classes),
            "cross_attention_dim": int(cross_attention_dim),
            "network_kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
        }

        self.architecture = DiffusionArchitecture(architecture)
        self.class_conditioning = ClassConditioning(class_conditioning)
        self.num_classes = int(num_classes)
        self.null_class_label = self.num_classes
        self.cross_attention_dim = int(cross_attention_dim)
        self.label_embedding: nn.Embedding | None = None
        if self.class_conditioning == ClassConditioning.EMBEDDING:
            kwargs["num_class_embeds"] = self.num_classes + 1
        else:
            kwargs["with_conditioning"] = True
            kwargs["cross_attention_dim"] = self.cross_attention_dim
            self.label_embedding = nn.Embedding(self.num_classes + 1, self.cross_attention_dim)
        self.backbone = _BACKBONES[self.architecture](**kwargs)
        self.in_channels = int(kwargs["in_channels"])
        self.out_channels = int(kwargs["out_channels"])
        self.spatial_dims = int(kwargs["spatial_dims"])
        self.block_out_channels = tuple(cast(Sequence[int], self.backbone.block_out_channels))

    def feature_point(self) -> tuple[str, int]:
        """The backbone's default feature point (:func:`medsyn_monai.networks.utils.feature_point`), as a name of
        this module's ``named_modules()``."""
        name, channels = feature_point(self.backbone)
        return f"backbone.{name}", channels

    def middle_point(self) -> tuple[str, int]:
        """The backbone's middle stage (:func:`medsyn_monai.networks.utils.middle_point`, ``align_module=
        "middle_block"``), as a name of this module's ``named_modules()``."""
        name, channels = middle_point(self.backbone)
        return f"backbone.{name}", channels

    def label_tokens(self, class_labels: torch.Tensor) -> torch.Tensor:
        """The ``(B, 1, cross_attention_dim)`` context tokens of ``class_labels`` (``"cross_attention"`` mode).

        Raises:
            ValueError: in ``"embedding"`` mode, which has no label tokens.
        """
        if self.label_embedding is None:
            raise ValueError("label_tokens exist only with class_conditioning='cross_attention'.")
        return self.label_embedding(class_labels.long().reshape(-1)).unsqueeze(1)

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the diffusion target for noisy images ``x`` of classes ``class_labels`` at ``timesteps``.

        Args:
            x: noisy images ``(B, in_channels, *spatial)``.
            timesteps: ``(B,)`` time steps.
            context: extra cross-attention tokens ``(B, T, cross_attention_dim)``; in ``"cross_attention"`` mode they
                are appended after the label token, in ``"embedding"`` mode they go to the backbone unchanged (which
                then needs its own cross-attention).
            class_labels: ``(B,)`` class indices in ``[0, num_classes]``, ``num_classes`` being the null label.

        Returns:
            ``(B, out_channels, *spatial)`` prediction.

        Raises:
            ValueError: when ``class_labels`` are missing, not one per image, or outside ``[0, num_classes]``.
        """
        if class_labels is None:
            raise ValueError(
                "class_labels must be given to a ClassConditionedDiffusionUNet; use the null label "
                f"{self.null_class_label} for unconditional predictions."
            )
        labels = torch.as_tensor(class_labels, device=x.device).long().reshape(-1)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"got {labels.shape[0]} class labels for a batch of {x.shape[0]} images.")
        # the range check reads the labels on the host: skipped under torch.compile, where it would break the graph
        # (an out-of-range label then still fails, in the embedding lookup)
        if (
            not torch.compiler.is_compiling()
            and labels.numel()
            and (int(labels.min()) < 0 or int(labels.max()) > self.null_class_label)
        ):
            raise ValueError(
                f"class labels must be in [0, {self.null_class_label}] ({self.null_class_label} = the null label), got "
                f"{sorted(set(labels.tolist()))}."
            )
        if self.label_embedding is None:
            return self.backbone(x, timesteps, context=context, class_labels=labels)
        tokens = self.label_tokens(labels).to(dtype=x.dtype)
        if context is not None:
            tokens = torch.cat([tokens, context.to(dtype=tokens.dtype)], dim=1)
        return self.backbone(x, timesteps, context=tokens)
