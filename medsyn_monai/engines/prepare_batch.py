"""Batch preparation for the engines: diffusion training (noise, time steps, targets, labels) and classifiers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.data import MetaTensor
from monai.engines.utils import DiffusionPrepareBatch as _MonaiDiffusionPrepareBatch
from monai.networks.schedulers import Scheduler
from monai.utils import CommonKeys, convert_to_tensor

from medsyn_monai.utils.enums import PredictionType

__all__ = ["DiffusionPrepareBatch", "ExpertPrepareBatch"]


class DiffusionPrepareBatch(_MonaiDiffusionPrepareBatch):
    """MONAI's :class:`~monai.engines.utils.DiffusionPrepareBatch` extended to every prediction type and class labels.

    For a batch ``{image_key: x0, label_key: y}`` it draws Gaussian noise and uniform time steps, and returns
    ``(x0, target, (), {"noise", "timesteps"[, "class_labels"][, "condition"]})`` for
    :class:`~monai.engines.SupervisedTrainer` with :class:`~medsyn_monai.inferers.ConditionalDiffusionInferer`.
    The target follows the scheduler's ``prediction_type``: the noise (``epsilon``), the velocity
    ``sqrt(a_t) eps - sqrt(1 - a_t) x0`` (``v_prediction``, Salimans & Ho 2022), or ``x0`` (``sample``).
    With ``cond_drop_prob > 0`` each label is replaced by ``null_class_label`` with that probability, which trains the
    unconditional branch used by classifier-free guidance (Ho & Salimans 2022).

    Args:
        scheduler: the training noise scheduler (gives ``num_train_timesteps``, ``prediction_type``, velocities).
        image_key: key of the images in the batch dictionary.
        label_key: key of the class labels, or ``None`` for an unconditional model.
        cond_drop_prob: probability of replacing a label by ``null_class_label``.
        null_class_label: index of the "no class" embedding; required when ``cond_drop_prob > 0``.
        condition_name: key of a cross-attention condition in the batch, passed as ``condition``.
        generator: optional random generator for noise, time steps and condition dropout (reproducible tests).

    Example:
        >>> import torch
        >>> from monai.networks.schedulers import DDPMScheduler
        >>> prep = DiffusionPrepareBatch(DDPMScheduler(num_train_timesteps=100), label_key="label")
        >>> x0, target, args, kwargs = prep({"image": torch.zeros(4, 1, 8, 8), "label": torch.tensor([0, 1, 0, 1])})
        >>> sorted(kwargs), bool(torch.equal(target, kwargs["noise"]))
        (['class_labels', 'noise', 'timesteps'], True)
    """

    def __init__(
        self,
        scheduler: Scheduler,
        image_key: str = "image",
        label_key: str | None = None,
        cond_drop_prob: float = 0.0,
        null_class_label: int | None = None,
        condition_name: str | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(num_train_timesteps=scheduler.num_train_timesteps, condition_name=condition_name)
        if not 0.0 <= cond_drop_prob < 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1), got {cond_drop_prob}.")
        if cond_drop_prob > 0 and null_class_label is None:
            raise ValueError("cond_drop_prob > 0 needs null_class_label (the index of the 'no class' embedding).")
        if cond_drop_prob > 0 and label_key is None:
            raise ValueError("cond_drop_prob > 0 needs label_key: there are no labels to drop.")
        prediction_type = getattr(scheduler, "prediction_type", PredictionType.EPSILON)
        if prediction_type not in [p.value for p in PredictionType]:
            raise ValueError(f"unsupported prediction_type {prediction_type!r}.")
        self.scheduler = scheduler
        self.prediction_type = PredictionType(prediction_type)
        self.image_key = image_key
        self.label_key = label_key
        self.cond_drop_prob = float(cond_drop_prob)
        self.null_class_label = null_class_label
        self.generator = generator

    def get_noise(self, images: torch.Tensor) -> torch.Tensor:
        if self.generator is None:  # draw on the images' device: no host-to-device copy per iteration
            return torch.randn_like(images)
        return torch.randn(images.shape, generator=self.generator, dtype=images.dtype).to(images.device)

    def get_timesteps(self, images: torch.Tensor) -> torch.Tensor:
        device = images.device if self.generator is None else "cpu"  # a seeded generator lives on the CPU
        steps = torch.randint(0, self.num_train_timesteps, (images.shape[0],), generator=self.generator, device=device)
        return steps.long().to(images.device)

    def get_target(self, images: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == PredictionType.EPSILON:
            return noise
        if self.prediction_type == PredictionType.V_PREDICTION:
            return self.scheduler.get_velocity(images, noise, timesteps)
        return images

    def drop_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Replace each label by ``null_class_label`` with probability ``cond_drop_prob``."""
        if self.cond_drop_prob <= 0:
            return labels
        device = labels.device if self.generator is None else "cpu"
        drop = torch.rand(labels.shape, generator=self.generator, device=device).to(labels.device) < self.cond_drop_prob
        null_class_label = self.null_class_label
        assert null_class_label is not None  # the constructor requires it when cond_drop_prob > 0
        return torch.where(drop, torch.full_like(labels, int(null_class_label)), labels)

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
        if not isinstance(batchdata, Mapping):
            raise ValueError(f"DiffusionPrepareBatch expects a dictionary batch with key {self.image_key!r}.")
        images = batchdata[self.image_key]
        if isinstance(images, MetaTensor):
            images = images.as_tensor()  # meta data tracking only costs time in the training loop
        images = images.to(device=device, non_blocking=non_blocking, **kwargs).float()
        noise = self.get_noise(images)
        timesteps = self.get_timesteps(images)
        target = self.get_target(images, noise, timesteps)
        infer_kwargs: dict[str, Any] = {"noise": noise, "timesteps": timesteps}
        if self.label_key is not None:
            if self.label_key not in batchdata:
                raise ValueError(f"the batch has no {self.label_key!r} entry for the class-conditional model.")
            labels = torch.as_tensor(batchdata[self.label_key]).reshape(-1).long()
            infer_kwargs["class_labels"] = self.drop_labels(labels).to(device=device, non_blocking=non_blocking)
        if self.condition_name is not None:
            cond = batchdata[self.condition_name]
            infer_kwargs["condition"] = torch.as_tensor(cond).to(device=device, non_blocking=non_blocking, **kwargs)
        return images, target, (), infer_kwargs


class ExpertPrepareBatch:
    """Prepare a dictionary batch for classifier training/evaluation with MONAI engines.

    Returns plain tensors ``(images, labels)``: float images on ``device`` (meta data dropped) and ``(B,)`` int64
    labels, as :class:`torch.nn.CrossEntropyLoss` expects (``(B, 1)`` labels are flattened).

    Args:
        image_key: key of the images ``(B, C, *spatial)`` in the batch.
        label_key: key of the class indices ``(B,)`` or ``(B, 1)``.

    Example:
        >>> import torch
        >>> images, labels = ExpertPrepareBatch()({"image": torch.zeros(2, 1, 4, 4), "label": torch.tensor([[1], [0]])})
        >>> images.dtype, labels.tolist(), labels.dtype
        (torch.float32, [1, 0], torch.int64)
    """

    def __init__(self, image_key: str = CommonKeys.IMAGE, label_key: str = CommonKeys.LABEL) -> None:
        self.image_key = image_key
        self.label_key = label_key

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(batchdata, Mapping):
            raise ValueError(f"ExpertPrepareBatch expects a dictionary batch, got {type(batchdata).__name__}.")
        for key in (self.image_key, self.label_key):
            if key not in batchdata:
                raise ValueError(f"the batch has no '{key}' entry (keys: {sorted(map(str, batchdata))}).")
        images = convert_to_tensor(batchdata[self.image_key], track_meta=False)
        images = images.to(device=device, non_blocking=non_blocking, **kwargs).float()
        labels = convert_to_tensor(batchdata[self.label_key], track_meta=False).reshape(-1)
        if labels.numel() != images.shape[0]:
            raise ValueError(f"{labels.numel()} labels for a batch of {images.shape[0]} images.")
        if labels.is_floating_point() and not torch.equal(labels, labels.round()):
            raise ValueError("labels must be integer class indices.")
        return images, labels.long().to(device=device, non_blocking=non_blocking)
