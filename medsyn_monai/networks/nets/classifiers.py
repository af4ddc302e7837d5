"""Expert classifiers: MONAI classification networks that score generated images and extract features."""

from __future__ import annotations

import operator
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.networks.nets import DenseNet121, ViT, resnet18, resnet50
from torch import nn

from medsyn_monai.utils.enums import ExpertNetwork
from medsyn_monai.utils.io import load_torch_file
from medsyn_monai.utils.model_info import MODEL_INFO_NAME, load_model_info

__all__ = ["ExpertClassifier"]

_FEATURE_DIMS = {ExpertNetwork.RESNET18: 512, ExpertNetwork.RESNET50: 2048, ExpertNetwork.DENSENET121: 1024}
# name of the final linear layer inside each MONAI network (replaced by the expert's own ``head``)
# module whose output is the spatial feature map the features are pooled from (ViT: the normalised tokens)
_MAP_MODULES = {
    ExpertNetwork.RESNET18: "layer4",
    ExpertNetwork.RESNET50: "layer4",
    ExpertNetwork.DENSENET121: "class_layers.relu",
    ExpertNetwork.VIT: "norm",
}
_MONAI_HEADS = {
    ExpertNetwork.RESNET18: "fc",
    ExpertNetwork.RESNET50: "fc",
    ExpertNetwork.DENSENET121: "class_layers.out",
    ExpertNetwork.VIT: "classification_head",
}


def _detach_head(network: nn.Module, name: str) -> int:
    """Replace the final linear layer ``name`` of a MONAI network by an identity; return its number of inputs."""
    *path, last = name.split(".")
    parent = network.get_submodule(".".join(path))
    head = parent.get_submodule(last)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"{type(network).__name__}.{name} is a {type(head).__name__}, not the expected nn.Linear head.")
    parent.add_module(last, nn.Identity())
    return head.in_features


def _vit_patch_size(image_size: tuple[int, int]) -> int:
    """The largest patch size among 16, 8, 4, 2 that divides every side of ``image_size``."""
    for patch in (16, 8, 4, 2):
        if all(s % patch == 0 for s in image_size):
            return patch
    raise ValueError(
        f"image_size {image_size} has no side divisible by 2: the 'vit' expert needs an image_size divisible by a "
        "patch size (16, 8, 4 or 2), or an explicit network_kwargs={'patch_size': ...}."
    )


class ExpertClassifier(nn.Module):
    """A MONAI 2D classification network chosen by name, with pooled features for FID/KID.

    "Experts" are classifiers trained on real images. They score generated images (per-class accuracy, confusion
    matrices) and their pooled penultimate features serve as the offline feature extractor of FID/KID.

    The MONAI network's last linear layer is replaced by the expert's own ``dropout`` + ``head`` (``nn.Linear``), so
    :meth:`features` (the pooled penultimate features, input of the head) and :meth:`forward` (logits) share one code
    path:

    - ``"resnet18"`` / ``"resnet50"``: :func:`monai.networks.nets.resnet18` / ``resnet50`` with ``spatial_dims=2``
      and the ImageNet stem (``conv1_t_stride=2``); features are the global-average-pooled ``layer4`` output (the
      input of MONAI's ``fc``), 512 / 2048 values.
    - ``"densenet121"``: :class:`monai.networks.nets.DenseNet121`; features are the pooled ``class_layers`` features
      (the input of MONAI's ``class_layers.out``), 1024 values.
    - ``"vit"``: :class:`monai.networks.nets.ViT` with ``classification=True``; features are the normalised class
      token (``hidden_size`` values). The patch size is the largest of 16, 8, 4, 2 that divides ``image_size``.

    Inputs are channel-first ``(B, in_channels, *spatial)`` images with intensities in ``[-1, 1]`` (the project's
    convention; no normalisation is applied here). Inputs whose spatial size differs from ``image_size`` are resized
    inside :meth:`forward` / :meth:`features` with (anti-aliased) bilinear interpolation, e.g. 64-px generations are
    classified by an expert trained at 224 px.

    Args:
        name: ``"resnet18"``, ``"resnet50"``, ``"densenet121"`` or ``"vit"`` (:class:`~medsyn_monai.utils.enums.
            ExpertNetwork`).
        in_channels: number of input channels, 1 or 3.
        num_classes: number of classes (>= 2); :meth:`forward` returns one logit per class.
        image_size: spatial size the network sees (an int for square images, or two ints in the tensor's axis order).
        pretrained_path: optional local weights file: a ``state_dict`` of an :class:`ExpertClassifier` with the same
            settings, a ``state_dict`` of the bare MONAI network (its last linear layer becomes ``head``), a
            dictionary holding one under ``"state_dict"``, or a TorchScript file. Nothing is downloaded.
        dropout: dropout probability applied to the features before ``head``.
        network_kwargs: further arguments of the MONAI network (e.g. ``{"hidden_size": 384, "num_layers": 6,
            "num_heads": 6, "mlp_dim": 1536}`` for a small ViT, ``{"conv1_t_stride": 1}`` for a ResNet).

    Raises:
        ValueError: unknown ``name``, ``in_channels`` not 1 or 3, ``num_classes < 2``, bad ``image_size`` or
            ``dropout``.
        FileNotFoundError: ``pretrained_path`` does not exist.
        RuntimeError: ``pretrained_path`` cannot be read or does not fit the network.

    Example:
        >>> import torch
        >>> net = ExpertClassifier("resnet18", in_channels=1, num_classes=3, image_size=32)
        >>> x = torch.zeros(2, 1, 16, 16)  # resized to 32 x 32 inside
        >>> net(x).shape, net.features(x).shape, net.feature_dim
        (torch.Size([2, 3]), torch.Size([2, 512]), 512)
    """

    def __init__(
        self,
        name: ExpertNetwork | str = ExpertNetwork.RESNET18,
        in_channels: int = 1,
        num_classes: int = 2,
        image_size: int | Sequence[int] = 224,
        pretrained_path: str | Path | None = None,
        dropout: float = 0.0,
        network_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if name not in [n.value for n in ExpertNetwork]:
            raise ValueError(f"unknown expert network {name!r}; choose one of {[n.value for n in ExpertNetwork]}.")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}.")
        try:  # an integer (numpy's too), not a bool, float or None (the class count of unlabelled data)
            valid_classes = not isinstance(num_classes, bool) and operator.index(num_classes) >= 2
        except TypeError:
            valid_classes = False
        if not valid_classes:
            raise ValueError(
                f"num_classes must be an integer >= 2, got {num_classes!r}: a classifier needs labelled data of at "
                "least 2 classes."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        size = (int(image_size),) * 2 if isinstance(image_size, int) else tuple(int(s) for s in image_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"image_size must be a positive int or two positive ints, got {image_size!r}.")
        #: the constructor arguments (JSON-ready) but the weights file, for
        #: :func:`~medsyn_monai.networks.nets.network_from_config`
        self.init_args = {
            "name": str(name), "in_channels": int(in_channels), "num_classes": int(num_classes),
            "image_size": list(size), "dropout": float(dropout), "network_kwargs": dict(network_kwargs or {}),
        }  # fmt: skip
        self.name = ExpertNetwork(name)
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.image_size: tuple[int, int] = (size[0], size[1])
        kwargs = dict(network_kwargs or {})
        self._token_grid: tuple[int, ...] = ()  # the ViT's patch grid (its feature map)

        if self.name in (ExpertNetwork.RESNET18, ExpertNetwork.RESNET50):
            factory = resnet18 if self.name == ExpertNetwork.RESNET18 else resnet50
            kwargs.setdefault("conv1_t_stride", 2)
            self.backbone: nn.Module = factory(
                spatial_dims=2, n_input_channels=in_channels, num_classes=num_classes, **kwargs
            )
        elif self.name == ExpertNetwork.DENSENET121:
            self.backbone = DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, **kwargs)
        else:
            kwargs.setdefault("patch_size", _vit_patch_size(size))
            patch = kwargs["patch_size"]
            patches = (int(patch),) * 2 if isinstance(patch, int) else tuple(int(p) for p in patch)
            self._token_grid = tuple(s // p for s, p in zip(size, patches, strict=True))
            self.backbone = ViT(
                in_channels=in_channels,
                img_size=size,
                spatial_dims=2,
                classification=True,
                num_classes=num_classes,
                post_activation=None,
                **kwargs,
            )
        self._feature_dim = _detach_head(self.backbone, _MONAI_HEADS[self.name])
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self._feature_dim, num_classes)
        if pretrained_path is not None:
            self.load_pretrained(pretrained_path)

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> ExpertClassifier:
        """The expert trained by a bundle's ``train_expert.json``: rebuilt from the ``model_info.json`` beside
        ``path`` (its ``network`` entry, or the ``name``, ``in_channels``, ``num_classes`` and ``expert_input_size``
        of earlier releases) with the weights of ``path`` (e.g. ``<output_dir>/models/expert/best_model.pt``).

        Raises:
            FileNotFoundError: ``path`` or its ``model_info.json`` does not exist (the message says how to train it).
        """
        path = Path(path)
        if not path.is_file() or not (path.parent / MODEL_INFO_NAME).is_file():
            raise FileNotFoundError(
                f"expert checkpoint {path} (with {MODEL_INFO_NAME} beside it) not found: train the expert first (the "
                "bundle's train_expert.json with the same output_dir) or point expert_ckpt at its best_model.pt."
            )
        info = load_model_info(path)
        if isinstance(info.get("network"), dict):  # written by ExpertTraining: the network's own arguments
            args = {k: v for k, v in info["network"].items() if k != "_target_"}
            return cls(**args, pretrained_path=path)
        return cls(
            info["name"],
            in_channels=info["in_channels"],
            num_classes=info["num_classes"],
            image_size=info["expert_input_size"] if "expert_input_size" in info else info["image_size"],
            pretrained_path=path,
        )

    @property
    def feature_dim(self) -> int:
        """Length ``D`` of the pooled penultimate features returned by :meth:`features`."""
        return self._feature_dim

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, MetaTensor):
            x = x.as_tensor()
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)} "
                f"(the {self.name.value} expert was built with in_channels={self.in_channels})."
            )
        if tuple(x.shape[2:]) != self.image_size:
            x = F.interpolate(x.float(), size=self.image_size, mode="bilinear", align_corners=False, antialias=True)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features.

        Args:
            x: images ``(B, in_channels, *spatial)`` in ``[-1, 1]``; resized to ``image_size`` when needed.

        Returns:
            ``(B, feature_dim)`` features (call ``eval()`` first for deterministic features, e.g. for FID).
        """
        out = self.backbone(self._prepare(x))
        if isinstance(out, tuple):  # ViT returns (class-token output, hidden states)
            out = out[0]
        return out.reshape(out.shape[0], -1)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial features: the last feature map before pooling (for spatial feature alignment).

        - ResNets: the ``layer4`` output, ``(B, feature_dim, H/32, W/32)`` of the ``image_size`` input (2 x 2 at 64 px);
        - DenseNet-121: the final (ReLU) feature map, ``(B, 1024, H/32, W/32)``;
        - ViT: the normalised patch tokens (class token left out) on their grid, ``(B, hidden_size, H/p, W/p)``.

        For the convolutional networks the spatial mean of the map is :meth:`features`; for the ViT the features are
        the class token instead.

        Args:
            x: images ``(B, in_channels, *spatial)`` in ``[-1, 1]``; resized to ``image_size`` when needed.

        Returns:
            ``(B, feature_dim, h, w)`` feature map.

        Example:
            >>> import torch
            >>> net = ExpertClassifier("resnet18", in_channels=1, num_classes=2, image_size=64).eval()
            >>> x = torch.zeros(2, 1, 64, 64)
            >>> fmap = net.feature_map(x)
            >>> fmap.shape, torch.allclose(fmap.mean(dim=(2, 3)), net.features(x), atol=1e-6)
            (torch.Size([2, 512, 2, 2]), True)
        """
        recorded: list[torch.Tensor] = []
        module = self.backbone.get_submodule(_MAP_MODULES[self.name])
        handle = module.register_forward_hook(lambda m, args, out: recorded.append(out))
        try:
            self.backbone(self._prepare(x))
        finally:
            handle.remove()
        out = recorded[-1]
        if self.name != ExpertNetwork.VIT:
            return out
        tokens = out[:, 1:] if getattr(self.backbone, "cls_token", None) is not None else out
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *self._token_grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Args:
            x: images ``(B, in_channels, *spatial)`` in ``[-1, 1]``; resized to ``image_size`` when needed.

        Returns:
            ``(B, num_classes)`` logits.
        """
        return self.head(self.dropout(self.features(x)))

    def load_pretrained(self, path: str | Path) -> None:
        """Load local weights (see ``pretrained_path`` in the class description).

        Args:
            path: weights file: a state dict (of this class or of the bare MONAI network), a dictionary with a
                ``"state_dict"`` entry, or a TorchScript module.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            RuntimeError: the file cannot be read, or its weights do not fit this network.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained_path {path} does not exist (weights are never downloaded).")
        try:
            if zipfile.is_zipfile(path) and any(n.endswith("/constants.pkl") for n in zipfile.ZipFile(path).namelist()):
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
            else:
                state = load_torch_file(path, "pretrained weights")
        except Exception as e:
            raise RuntimeError(f"cannot read pretrained weights from {path}: {e}") from e
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise RuntimeError(
                f"{path} holds no state_dict (a mapping of parameter names to tensors); "
                f"found {type(state).__name__}"
                + (f" with keys {sorted(state)[:10]}" if isinstance(state, Mapping) else "")
            )
        state = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}
        own = self.state_dict()
        if set(state) != set(own):  # maybe the bare MONAI network: move its last linear layer to ``head``
            monai_head = _MONAI_HEADS[self.name] + "."
            remapped = {
                ("head." + k[len(monai_head) :] if k.startswith(monai_head) else "backbone." + k): v
                for k, v in state.items()
            }
            if set(remapped) == set(own):
                state = remapped
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [
            f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
            for k, v in own.items()
            if k in state and state[k].shape != v.shape
        ]
        if missing or unexpected or shapes:
            raise RuntimeError(
                f"the weights in {path} do not fit ExpertClassifier({self.name.value!r}, "
                f"in_channels={self.in_channels}, num_classes={self.num_classes}, image_size={self.image_size}): "
                f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}, "
                f"{len(shapes)} shape mismatches {shapes[:5]}."
            )
        self.load_state_dict(state)
