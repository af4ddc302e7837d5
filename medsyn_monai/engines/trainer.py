"""The one diffusion training engine shared by every bundle."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer
from monai.networks.schedulers import Scheduler
from monai.utils import CommonKeys as Keys
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from medsyn_monai.engines.prepare_batch import DiffusionPrepareBatch
from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.losses import DiffusionLoss, FeatureAlignmentLoss

__all__ = ["DiffusionTrainer"]


class DiffusionTrainer(SupervisedTrainer):
    """Denoising-diffusion training on Ignite: MONAI's :class:`~monai.engines.SupervisedTrainer` set up for diffusion.

    Each iteration draws noise and time steps (:class:`~medsyn_monai.engines.DiffusionPrepareBatch`), noises the
    images with ``scheduler`` and asks the network for the scheduler's prediction type (noise, velocity or clean
    image) through :class:`~medsyn_monai.inferers.ConditionalDiffusionInferer`, which also passes class labels.
    Everything else is the MONAI trainer: handlers (EMA, checkpoints, TensorBoard, LR schedules) attach as usual,
    ``amp=True`` enables CUDA mixed precision, ``compile=True`` uses ``torch.compile``. Gradient-norm clipping is an
    option (applied after AMP un-scaling). Variants of every bundle are options of this one engine.

    Extended objective (only when ``feature_alignment``, ``sample_weight_key`` or ``noise_loss_weight != 1`` is set;
    otherwise the iteration is MONAI's unchanged). The loss becomes

    ``loss = noise_loss_weight * loss_noise + alignment_loss_weight * loss_align``

    - ``loss_noise``: the pixel loss; with ``sample_weight_key`` the per-sample weights ``w_i`` of the batch entry
      of that name weight the per-sample losses ``l_i`` (the mean of the pixel loss over each sample):
      ``mean_i(w_i * l_i)``, or ``sum_i(w_i * l_i) / sum_i(w_i)`` with ``sample_weight_normalize`` (then weights
      of 0 for some samples give the loss of the others alone), e.g. to weight prior-preservation images in few-shot
      fine-tuning;
    - ``loss_align``: :class:`~medsyn_monai.losses.FeatureAlignmentLoss` of the network's features of this forward
      pass (feature-aligned diffusion; its hooks are attached to the network for the duration of :meth:`run`; the
      expert sees ``x_t`` or ``x_0`` as the loss was configured). The projection's parameters must be given to the
      optimizer (e.g. ``list(net.parameters()) + list(align.parameters())``) and saved with the checkpoint.

    ``engine.state.output`` then holds ``"loss"`` (the total, which is back-propagated), ``"loss_noise"`` and,
    with alignment, ``"loss_align"`` (detached), for handlers such as
    :class:`~medsyn_monai.handlers.TrainingStatsHandler` (``extra_keys``) or MONAI's ``TensorBoardStatsHandler``.
    AMP, gradient accumulation, clipping (of the network and projection parameters) and ``compile`` work as usual.

    Args:
        device: device to train on.
        max_epochs: number of epochs.
        train_data_loader: loader of dictionaries ``{"image": (B, C, *spatial) in [-1, 1], "label": (B,)}``.
        network: diffusion network with the signature ``net(x, timesteps, context=None, class_labels=None)``.
        optimizer: optimizer of ``network``'s parameters.
        scheduler: training noise scheduler (:mod:`monai.networks.schedulers`).
        loss_function: loss between prediction and target; defaults to :class:`~medsyn_monai.losses.DiffusionLoss`
            (L2).
        inferer: defaults to ``ConditionalDiffusionInferer(scheduler)``.
        label_key: batch key of the class labels for a class-conditional network, or ``None``.
        cond_drop_prob: probability of replacing a label by ``null_class_label`` (classifier-free guidance).
        null_class_label: index of the "no class" embedding.
        max_grad_norm: clip the gradient norm to this value (``None``: no clipping).
        train_handlers: Ignite/MONAI handlers to attach.
        epoch_length: iterations per epoch (default: the loader's length).
        amp: CUDA automatic mixed precision (float16 with gradient scaling).
        compile: ``torch.compile`` the network.
        compile_kwargs: arguments of ``torch.compile``.
        feature_alignment: a :class:`~medsyn_monai.losses.FeatureAlignmentLoss` built for ``network`` (``None``: no
            alignment term).
        noise_loss_weight: weight ``w1`` of the pixel (denoising) loss.
        alignment_loss_weight: weight ``w2`` of the alignment loss (0.5 by default, REPA's ``lambda``).
        sample_weight_key: batch key of per-sample loss weights ``(B,)`` (non-negative), or ``None``.
        sample_weight_normalize: divide the weighted sum by the sum of the weights instead of the batch size.
        kwargs: any other :class:`~monai.engines.SupervisedTrainer` argument.

    Raises:
        ValueError: non-positive ``max_grad_norm``; negative or non-finite loss weights; (during training) sample
            weights missing from the batch, of the wrong length, negative or non-finite, or a loss function that does
            not give one value per sample with ``sample_weight_key``.

    Example:
        >>> import torch
        >>> from monai.networks.schedulers import DDPMScheduler
        >>> from medsyn_monai.networks.nets import LightweightDiffusionUNet
        >>> net = LightweightDiffusionUNet(2, 1, 1, channels=(8, 16), norm_num_groups=4)
        >>> data = [{"image": torch.zeros(2, 1, 8, 8)}] * 3
        >>> trainer = DiffusionTrainer("cpu", 1, data, net, torch.optim.Adam(net.parameters()),
        ...                            DDPMScheduler(num_train_timesteps=100))
        >>> trainer.run()
        >>> trainer.state.iteration
        3
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: torch.nn.Module,
        optimizer: Optimizer,
        scheduler: Scheduler,
        loss_function: Callable | None = None,
        inferer: Inferer | None = None,
        label_key: str | None = None,
        cond_drop_prob: float = 0.0,
        null_class_label: int | None = None,
        max_grad_norm: float | None = None,
        train_handlers: Sequence | None = None,
        epoch_length: int | None = None,
        amp: bool = False,
        compile: bool = False,
        compile_kwargs: dict | None = None,
        feature_alignment: FeatureAlignmentLoss | None = None,
        noise_loss_weight: float = 1.0,
        alignment_loss_weight: float = 0.5,
        sample_weight_key: str | None = None,
        sample_weight_normalize: bool = False,
        **kwargs: Any,
    ) -> None:
        if max_grad_norm is not None and max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm}.")
        for name, value in (("noise_loss_weight", noise_loss_weight), ("alignment_loss_weight", alignment_loss_weight)):
            if not math.isfinite(float(value)) or float(value) < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
        if feature_alignment is not None and not isinstance(feature_alignment, FeatureAlignmentLoss):
            raise ValueError(
                f"feature_alignment must be a FeatureAlignmentLoss or None, got {type(feature_alignment)}."
            )
        prepare_batch = DiffusionPrepareBatch(
            scheduler, label_key=label_key, cond_drop_prob=cond_drop_prob, null_class_label=null_class_label
        )
        kwargs.setdefault("decollate", False)  # the loss is all the handlers need; decollating costs time
        super().__init__(
            device=torch.device(device) if isinstance(device, str) else device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function if loss_function is not None else DiffusionLoss(),
            epoch_length=epoch_length,
            prepare_batch=prepare_batch,
            inferer=inferer if inferer is not None else ConditionalDiffusionInferer(scheduler),
            train_handlers=train_handlers,
            amp=amp,
            compile=compile,
            compile_kwargs=compile_kwargs,
            **kwargs,
        )
        self.raw_network = network  # uncompiled module: what checkpoints and EMA refer to
        self.noise_scheduler = scheduler
        self.max_grad_norm = max_grad_norm
        self.feature_alignment = feature_alignment
        self.noise_loss_weight = float(noise_loss_weight)
        self.alignment_loss_weight = float(alignment_loss_weight)
        self.sample_weight_key = sample_weight_key
        self.sample_weight_normalize = bool(sample_weight_normalize)
        self.extended_loss = feature_alignment is not None or sample_weight_key is not None or noise_loss_weight != 1
        self.pixel_loss = self.loss_function  # the denoising loss; `loss_function` is the total in extended mode
        self._per_sample_loss: Callable | None = None
        if sample_weight_key is not None:
            pixel = self.pixel_loss
            per_sample = isinstance(pixel, DiffusionLoss) and pixel.reduction == "mean"
            self._per_sample_loss = DiffusionLoss(pixel.loss_type, reduction="none") if per_sample else pixel
        if self.extended_loss:
            self.loss_function = self._total_loss
        self._sample_weights: torch.Tensor | None = None
        self._batch_checked = False
        self.add_event_handler(Events.ITERATION_STARTED, self._check_first_batch)
        if max_grad_norm is not None:
            self.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self._clip_gradients)

    def run(self) -> None:  # type: ignore[override]
        """Train; with ``feature_alignment`` its hooks are on the network during the run and removed afterwards."""
        if self.feature_alignment is None:
            return super().run()
        with self.feature_alignment.attached(self.raw_network):
            return super().run()

    def _iteration(self, engine: SupervisedTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """MONAI's iteration; in extended mode the sample weights of the batch are read first for the loss."""
        if not self.extended_loss:
            return super()._iteration(engine, batchdata)
        if self.feature_alignment is not None:
            if not self.feature_alignment.is_attached:
                raise RuntimeError("feature_alignment is not attached to the network: train with trainer.run().")
            self.feature_alignment.clear()
        self._sample_weights = self._read_sample_weights(batchdata, engine.state.device)
        try:
            return super()._iteration(engine, batchdata)
        finally:
            self._sample_weights = None

    def _read_sample_weights(self, batchdata: Any, device: torch.device | None) -> torch.Tensor | None:
        if self.sample_weight_key is None:
            return None
        if not isinstance(batchdata, dict) or self.sample_weight_key not in batchdata:
            raise ValueError(f"the batch has no {self.sample_weight_key!r} entry (sample_weight_key).")
        weights = batchdata[self.sample_weight_key]
        weights = weights.as_tensor() if isinstance(weights, MetaTensor) else torch.as_tensor(weights)
        weights = weights.detach().float().reshape(-1)
        if not torch.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(f"sample weights must be finite and >= 0, got {weights.tolist()}.")
        return weights.to(device)

    def _total_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``noise_loss_weight * loss_noise + alignment_loss_weight * loss_align``; components go to the output."""
        output = self.state.output
        weights = self._sample_weights
        if weights is not None:
            per_sample = self._per_sample_loss(prediction, target)  # type: ignore[misc]
            if per_sample.shape != (prediction.shape[0],):
                raise ValueError(
                    f"with sample_weight_key the loss function must return one value per sample, shape "
                    f"({prediction.shape[0]},), got {tuple(per_sample.shape)}: use DiffusionLoss(reduction='none')."
                )
            if weights.shape[0] != per_sample.shape[0]:
                raise ValueError(f"{weights.shape[0]} sample weights for a batch of {per_sample.shape[0]} images.")
            weighted = (weights * per_sample.float()).sum()
            noise = (
                weighted / weights.sum().clamp_min(1e-12) if self.sample_weight_normalize else weighted / len(weights)
            )
        else:
            noise = self.pixel_loss(prediction, target).mean()
        total = self.noise_loss_weight * noise
        output["loss_noise"] = noise.detach()
        if self.feature_alignment is not None:
            align = self.feature_alignment.recorded_loss(clean_images=output[Keys.IMAGE])
            total = total + self.alignment_loss_weight * align
            output["loss_align"] = align.detach()
        return total

    def _check_first_batch(self, engine: Engine) -> None:
        """Fail with a clear message when the data's channels do not match the network's ``in_channels``."""
        if self._batch_checked:
            return
        self._batch_checked = True
        batch = engine.state.batch
        images = batch.get("image") if isinstance(batch, dict) else None
        expected = getattr(self.raw_network, "in_channels", None)
        if images is not None and expected is not None and images.ndim >= 3 and images.shape[1] != expected:
            raise ValueError(
                f"the training images have {images.shape[1]} channel(s) but the network expects {expected}: set the "
                f"bundle's in_channels to {images.shape[1]} (command line: --in_channels {images.shape[1]}) or convert "
                "the images (e.g. RGBToGreyd)."
            )

    def _clip_gradients(self, engine: Engine) -> None:
        if self.amp and self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = list(self.raw_network.parameters())
        if self.feature_alignment is not None:
            params += list(self.feature_alignment.parameters())
        norm = torch.nn.utils.clip_grad_norm_(params, float(self.max_grad_norm))  # type: ignore[arg-type]
        self.state.grad_norm = float(norm)
