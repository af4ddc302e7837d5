"""The one diffusion training engine shared by every bundle."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer
from monai.networks.schedulers import Scheduler
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from medsyn_monai.engines.prepare_batch import DiffusionPrepareBatch
from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.losses import DiffusionLoss

__all__ = ["DiffusionTrainer"]


class DiffusionTrainer(SupervisedTrainer):
    """Denoising-diffusion training on Ignite: MONAI's :class:`~monai.engines.SupervisedTrainer` set up for diffusion.

    Each iteration draws noise and time steps (:class:`~medsyn_monai.engines.DiffusionPrepareBatch`), noises the
    images with ``scheduler`` and asks the network for the scheduler's prediction type (noise, velocity or clean
    image) through :class:`~medsyn_monai.inferers.ConditionalDiffusionInferer`, which also passes class labels.
    Everything else is the MONAI trainer: handlers (EMA, checkpoints, TensorBoard, LR schedules) attach as usual,
    ``amp=True`` enables CUDA mixed precision, ``compile=True`` uses ``torch.compile``. Gradient-norm clipping is an
    option (applied after AMP un-scaling). Variants of every bundle are options of this one engine.

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
        kwargs: any other :class:`~monai.engines.SupervisedTrainer` argument.

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
        **kwargs: Any,
    ) -> None:
        if max_grad_norm is not None and max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm}.")
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
        self._batch_checked = False
        self.add_event_handler(Events.ITERATION_STARTED, self._check_first_batch)
        if max_grad_norm is not None:
            self.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self._clip_gradients)

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
        norm = torch.nn.utils.clip_grad_norm_(self.raw_network.parameters(), float(self.max_grad_norm))  # type: ignore
        self.state.grad_norm = float(norm)
