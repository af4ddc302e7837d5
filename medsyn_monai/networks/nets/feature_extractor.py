"""Image → feature-vector extractor for distribution metrics (FID, KID, precision/recall), fully offline."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medsyn_monai.networks.nets.classifiers import ExpertClassifier
from medsyn_monai.transforms.intensity.array import RGBToGrey
from medsyn_monai.utils.io import UnsafeCheckpointError, load_torch_file

__all__ = ["FeatureExtractor"]


class FeatureExtractor(nn.Module):
    """Pooled feature vectors of images, for Fréchet / kernel distances and k-NN precision-recall.

    Standard FID uses Inception-v3 features (Heusel et al. 2017), whose weights cannot be fetched offline. This
    extractor takes, in order of preference for medical images:

    - a trained expert (:class:`~medsyn_monai.networks.nets.ExpertClassifier`, or any module with a
      ``features(x)`` method): its pooled penultimate features — domain-specific and offline;
    - any local model file: a TorchScript file (e.g. an Inception-v3 TorchScript the user already has) or a
      pickled ``nn.Module``; outputs of shape ``(B, D)``, ``(B, D, 1, 1)`` or ``(B, C, H, W)`` (global-average
      pooled) are accepted;
    - any ``nn.Module`` given directly (same output rules).

    Inputs are images in ``input_range`` (the project's [-1, 1]); they are mapped to ``model_range`` (e.g.
    ``(0, 255)`` for TorchScript Inception files that expect raw pixels), grey images are repeated to
    ``model_in_channels`` channels (RGB images become grey with the BT.601 weights of
    :class:`~medsyn_monai.transforms.RGBToGrey`), and images are resized to ``image_size`` when given. Distances
    computed with different extractors are not comparable with each other: compare FIDs only within one extractor.

    The model is frozen: no gradients, and it stays in eval mode whatever :meth:`train` is asked (BatchNorm
    statistics never drift), so the extractor can also serve as the frozen expert of feature alignment
    (:class:`~medsyn_monai.engines.DiffusionTrainer`); :meth:`feature_map` gives the features before pooling, for
    spatial alignment.

    Args:
        model: a module (expert or feature network); mutually exclusive with ``path``.
        path: local TorchScript or pickled-module file; nothing is downloaded.
        image_size: spatial size the model expects (``None``: unchanged).
        model_in_channels: channels the model expects (``None``: unchanged); 1 → 3 repeats, 3 → 1 averages.
        input_range: value range of the images given to :meth:`forward`.
        model_range: value range the model expects.
        batch_size: images per forward pass in :meth:`extract`.

    Example:
        >>> import torch
        >>> fx = FeatureExtractor(torch.nn.Conv2d(1, 4, 3), model_range=(0.0, 1.0))
        >>> fx(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 4])
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        path: str | Path | None = None,
        image_size: int | Sequence[int] | None = None,
        model_in_channels: int | None = None,
        input_range: Sequence[float] = (-1.0, 1.0),
        model_range: Sequence[float] = (-1.0, 1.0),
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        if (model is None) == (path is None):
            raise ValueError("give exactly one of model (a module) or path (a local model file).")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if model is None:
            assert path is not None  # exactly one of model and path (checked above)
            model = self._load(Path(path))
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.model_in_channels = model_in_channels
        self.input_range = (float(input_range[0]), float(input_range[1]))
        self.model_range = (float(model_range[0]), float(model_range[1]))
        self.batch_size = batch_size
        self._to_grey = RGBToGrey()

    @classmethod
    def from_expert_checkpoint(cls, path: str | Path, **kwargs: Any) -> FeatureExtractor:
        """The features of an expert trained by a bundle's ``train_expert.json``
        (:meth:`ExpertClassifier.from_checkpoint`), taking images of any channel count (converted to the expert's).

        Args:
            path: the expert's weights, e.g. ``<output_dir>/models/expert/best_model.pt``.
            kwargs: other arguments of :class:`FeatureExtractor`.
        """
        expert = ExpertClassifier.from_checkpoint(path)
        kwargs.setdefault("model_in_channels", expert.in_channels)
        return cls(expert, **kwargs)

    @property
    def feature_dim(self) -> int | None:
        """Length of the features when the model declares it (``feature_dim`` of an expert), else ``None``."""
        dim = getattr(self.model, "feature_dim", None)
        return int(dim) if isinstance(dim, int) else None

    def train(self, mode: bool = True) -> FeatureExtractor:
        """The extractor is frozen: the model stays in eval mode whatever ``mode`` is."""
        super().train(mode)
        self.model.eval()
        return self

    @staticmethod
    def _load(path: Path) -> nn.Module:
        if not path.is_file():
            raise FileNotFoundError(f"feature extractor file {path} not found (nothing is downloaded).")
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except RuntimeError:
            pass
        try:
            obj = load_torch_file(path, "feature extractor file")
        except UnsafeCheckpointError as e:
            raise UnsafeCheckpointError(
                f"{e} A pickled nn.Module is not loaded for that reason: save the model as TorchScript "
                "(torch.jit.script(model).save(path)), or build the network and pass it as `model` (e.g. "
                "ExpertClassifier with pretrained_path)."
            ) from e
        raise ValueError(
            f"{path} holds a {type(obj).__name__} (weights without a network), not a model: give a TorchScript file, "
            "or build the network and pass it as `model` (e.g. ExpertClassifier with pretrained_path)."
        )

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        (a, b), (c, d) = self.input_range, self.model_range
        if (a, b) != (c, d):
            x = (x - a) / (b - a) * (d - c) + c
        if self.model_in_channels is not None and x.shape[1] != self.model_in_channels:
            if x.shape[1] == 1:
                x = x.repeat(1, self.model_in_channels, *([1] * (x.ndim - 2)))
            elif x.shape[1] == 3 and self.model_in_channels == 1:
                x = torch.as_tensor(self._to_grey(x.transpose(0, 1))).transpose(0, 1)  # (B, 3, ...) -> (B, 1, ...)
            else:
                raise ValueError(f"cannot map {x.shape[1]} channels to the model's {self.model_in_channels}.")
        if self.image_size is not None and tuple(x.shape[2:]) != tuple(self.image_size):
            x = F.interpolate(x, size=tuple(self.image_size), mode="bilinear", align_corners=False, antialias=True)
        return x

    def _model_output(self, x: torch.Tensor, *methods: str) -> torch.Tensor:
        """The output of the first of the model's ``methods`` it has (methods, not submodules of that name), else of
        the model."""
        for method in methods:
            fn = getattr(self.model, method, None)
            if callable(fn) and not isinstance(fn, nn.Module):
                out = fn(x)
                break
        else:
            out = self.model(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, D)`` of images ``(B, C, H, W)``."""
        out = self._model_output(self._prepare(x), "features")
        if out.ndim > 2:
            out = out.flatten(2).mean(dim=2)
        return out.float()

    @torch.no_grad()
    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial features ``(B, D, h, w)`` of images ``(B, C, H, W)``, not pooled: for spatial feature alignment
        (:class:`~medsyn_monai.losses.FeatureAlignmentLoss` with ``spatial=True``).

        The model's ``feature_map(x)`` method when it has one (an
        :class:`~medsyn_monai.networks.nets.ExpertClassifier`: its last feature map before pooling), else the
        output of ``features(x)`` or of the model, which must then be a map. Images are prepared as for
        :meth:`forward` (range, channels, ``image_size``).

        Raises:
            ValueError: the model gives pooled features only.

        Example:
            >>> import torch
            >>> fx = FeatureExtractor(torch.nn.Conv2d(1, 4, 3))
            >>> fx.feature_map(torch.zeros(2, 1, 8, 8)).shape
            torch.Size([2, 4, 6, 6])
        """
        out = self._model_output(self._prepare(x), "feature_map", "features")
        if out.ndim < 3:
            raise ValueError(
                f"the model ({type(self.model).__name__}) gives pooled features of shape {tuple(out.shape)}, not a "
                "feature map (B, D, *spatial): give a model with a feature_map(x) method (e.g. an ExpertClassifier) "
                "or one whose output is a map, or align pooled features (spatial=False)."
            )
        return out.float()

    @torch.no_grad()
    def extract(self, images: torch.Tensor | Iterable, device: str | torch.device = "cpu") -> torch.Tensor:
        """Features of a tensor of images (in batches) or of a loader of ``{"image": ...}`` / tensor batches."""
        self.model.to(device)
        chunks = []
        if isinstance(images, torch.Tensor):
            for start in range(0, images.shape[0], self.batch_size):
                chunks.append(self(images[start : start + self.batch_size].to(device)).cpu())
        else:
            for batch in images:
                x = batch["image"] if isinstance(batch, dict) else batch
                chunks.append(self(torch.as_tensor(x).to(device)).cpu())
        if not chunks:
            raise ValueError("no images to extract features from.")
        return torch.cat(chunks)
