"""The one diffusion training engine shared by every bundle."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer
from monai.networks.schedulers import Scheduler
from monai.utils import CommonKeys as Keys
from monai.utils import convert_to_tensor
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from medsyn_monai.engines.prepare_batch import DiffusionPrepareBatch
from medsyn_monai.inferers import ConditionalDiffusionInferer
from medsyn_monai.losses import DiffusionLoss, FeatureAlignmentLoss
from medsyn_monai.networks.utils import FeatureHook, HookTarget
from medsyn_monai.utils.cli import NONE_STRINGS, as_bool
from medsyn_monai.utils.distributed import all_reduce_max, get_world_size, is_distributed
from medsyn_monai.utils.enums import ExpertInput

__all__ = ["DiffusionTrainer"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (more often than ``max_nonfinite_batches`` allows)."""


class DiffusionTrainer(SupervisedTrainer):
    """Denoising-diffusion training on Ignite: MONAI's :class:`~monai.engines.SupervisedTrainer` set up for diffusion.

    Each iteration draws noise and time steps (:class:`~medsyn_monai.engines.DiffusionPrepareBatch`), noises the
    images with ``scheduler`` and asks the network for the scheduler's prediction type (noise, velocity or clean
    image) through :class:`~medsyn_monai.inferers.ConditionalDiffusionInferer`, which also passes class labels.
    Everything else is the MONAI trainer: handlers (EMA, checkpoints, TensorBoard, LR schedules) attach as usual,
    ``amp=True`` enables CUDA mixed precision, ``compile=True`` uses ``torch.compile``. Gradient-norm clipping is an
    option (applied after AMP un-scaling). Variants of every bundle are options of this one engine.

    The objective, given to the MONAI trainer as its loss function at construction, is

    ``loss = noise_loss_weight * loss_noise + alignment_loss_weight * loss_align``

    - ``loss_noise``: the pixel loss (``loss_function``, :class:`~medsyn_monai.losses.DiffusionLoss` by default);
      with ``sample_weight_key`` the per-sample weights ``w_i`` of the batch entry of that name weight the
      per-sample losses ``l_i`` (the mean of the pixel loss over each sample): ``mean_i(w_i * l_i)``, or
      ``sum_i(w_i * l_i) / sum_i(w_i)`` with ``sample_weight_normalize`` (then weights of 0 for some samples give the
      loss of the others alone), e.g. to weight prior-preservation images in few-shot fine-tuning;
    - ``loss_align`` (feature-aligned diffusion, only with ``feature_alignment``): the trainer wires the parts of
      feature alignment, each with one job: a :class:`~medsyn_monai.networks.utils.FeatureHook` reads the network's
      features at ``align_module`` (default: the end of the down path) during the training forward pass only; the
      frozen ``alignment_expert`` (a :class:`~medsyn_monai.networks.nets.FeatureExtractor`, e.g.
      ``FeatureExtractor.from_expert_checkpoint(...)``) gives the expert's features of the noisy input ``x_t``
      (``expert_input="noisy"``, read by a second hook on the network's input) or of the clean images
      (``"clean"``); :class:`~medsyn_monai.losses.FeatureAlignmentLoss` (which owns the trainable projection)
      compares them. The projection's parameters must be given to the optimizer (e.g.
      ``list(net.parameters()) + list(align.parameters())``) and saved with the checkpoint. Expert and loss are
      moved to the trainer's device. With a spatial loss (``FeatureAlignmentLoss(spatial=True)``) the expert gives
      its feature map instead of pooled features (its ``feature_map(x)`` method, e.g.
      :meth:`~medsyn_monai.networks.nets.FeatureExtractor.feature_map`, else its output, which must be a map).
      With ``alignment_stop_fraction=f`` the alignment term is on for the first ``f`` of the training iterations
      only (HASTE, Wang et al. 2025, "REPA Works Until It Doesn't: Early-Stopped, Holistic Alignment Supercharges
      Diffusion Training"): while ``iteration < f * max_epochs * epoch_length`` (counting the iterations done before
      the current one) its weight is ``alignment_loss_weight``, afterwards 0 and the expert is not run at all.

    ``engine.state.output`` holds ``"loss"`` (the total, which is back-propagated) and, when the objective has
    more than the plain pixel loss, ``"loss_noise"`` and, with alignment, ``"loss_align"`` (detached; not written
    once ``alignment_stop_fraction`` switched alignment off); their names are in :attr:`loss_components`. With
    alignment it also holds statistics that make a collapse of the alignment visible: ``"align_proj_std"`` and
    ``"align_target_std"``, the standard deviations across the batch of the projected and of the target features
    (:meth:`~medsyn_monai.losses.FeatureAlignmentLoss.batch_std`, before centring or normalisation; a projection
    collapsed to a constant output shows as ``align_proj_std`` near 0), ``"loss_align_shuffled"`` (the alignment
    loss with each image's target replaced by the next image's in the batch, no gradient: when it is no larger than
    ``loss_align`` the alignment carries no per-image information, whatever the spread; these three for batches of
    2 images or more, while alignment is on) and, with ``alignment_stop_fraction``, ``"align_weight"`` (the
    alignment weight of the iteration); their
    names are in :attr:`output_stats`. :class:`~medsyn_monai.handlers.TrainingStatsHandler` logs both lists by
    default (TensorBoard ``train/<name>``, ``train/epoch_<name>``, CSV ``mean_<name>``).
    AMP, gradient accumulation, clipping (of the network and projection parameters) and ``compile`` work as usual.

    A NaN or infinite loss never reaches the weights: the first one stops training with
    :class:`NonFiniteLossError` before the backward pass (naming the epoch and iteration and the usual causes), or,
    with ``max_nonfinite_batches=N``, up to ``N`` such batches are skipped (no parameter update; a warning each) and
    the ``N+1``-th stops training. The count is ``engine.state.nonfinite_batches``.

    Multi-process training (``torchrun``, the bundles' ``multi_gpu_train.json``): inside an initialised process
    group of more than one process the network is trained through
    :class:`~torch.nn.parallel.DistributedDataParallel` (gradients averaged over the processes after every
    backward pass; the batch of each process is the loader's ``batch_size``, so the global batch is ``batch_size``
    times the number of processes). The feature-alignment projection's gradients are averaged the same way, the
    non-finite-loss check is agreed by all processes (a NaN on one skips or stops the step on all), and checkpoints,
    EMA and hooks keep referring to the plain network (:attr:`raw_network`), so a checkpoint of a multi-process run
    loads in a single process and the other way round.

    Args:
        device: device to train on (a ``torch.device`` or a string such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        max_epochs: number of epochs.
        train_data_loader: loader of dictionaries ``{"image": (B, C, *spatial) in [-1, 1], "label": (B,)}``.
        network: diffusion network with the signature ``net(x, timesteps, context=None, class_labels=None)``.
        optimizer: optimizer of ``network``'s parameters.
        scheduler: training noise scheduler (:mod:`monai.networks.schedulers`).
        loss_function: pixel loss between prediction and target; defaults to
            :class:`~medsyn_monai.losses.DiffusionLoss` (L2). With ``sample_weight_key`` it must return one value per
            sample (a ``DiffusionLoss`` is switched to ``reduction="none"`` for that).
        inferer: defaults to ``ConditionalDiffusionInferer(scheduler)``.
        label_key: batch key of the class labels for a class-conditional network, or ``None``.
        cond_drop_prob: probability of replacing a label by ``null_class_label`` (classifier-free guidance).
        null_class_label: index of the "no class" embedding.
        max_grad_norm: clip the gradient norm to this value (``None``, or the command-line string ``"null"`` /
            ``"none"``: no clipping).
        train_handlers: Ignite/MONAI handlers to attach.
        epoch_length: iterations per epoch (default: the loader's length).
        amp: CUDA automatic mixed precision (float16 with gradient scaling); the command-line spellings of
            :func:`~medsyn_monai.utils.as_bool` are accepted, as for ``compile``.
        compile: ``torch.compile`` the network.
        compile_kwargs: arguments of ``torch.compile``.
        feature_alignment: a :class:`~medsyn_monai.losses.FeatureAlignmentLoss` (``None``: no alignment term).
        alignment_expert: the frozen expert features (``(B, C, H, W) -> (B, expert_dim)``); required with
            ``feature_alignment``.
        align_module: name of the network module whose output is aligned (``None``: the network's
            :func:`~medsyn_monai.networks.utils.feature_point`).
        expert_input: ``"noisy"`` (the expert sees ``x_t``, default) or ``"clean"`` (``x_0``, REPA).
        noise_loss_weight: weight ``w1`` of the pixel (denoising) loss.
        alignment_loss_weight: weight ``w2`` of the alignment loss (0.5 by default, REPA's ``lambda``).
        alignment_stop_fraction: fraction ``f`` in ``(0, 1]`` of the training iterations (``max_epochs *
            epoch_length``) after which the alignment term is switched off (see above); ``None`` (or the command
            line's ``"null"``): aligned throughout. Ignored without ``feature_alignment``.
        sample_weight_key: batch key of per-sample loss weights ``(B,)`` (non-negative), or ``None``.
        sample_weight_normalize: divide the weighted sum by the sum of the weights instead of the batch size.
        max_nonfinite_batches: batches with a NaN/inf loss to skip before training stops (0: stop at the first).
        distributed: train through ``DistributedDataParallel`` (``None``: when a process group of more than one
            process is initialised; ``True`` requires one).
        kwargs: any other :class:`~monai.engines.SupervisedTrainer` argument.

    Raises:
        ValueError: non-positive ``max_grad_norm``; negative or non-finite loss weights; alignment parts missing or
            of mismatching sizes; ``alignment_stop_fraction`` outside ``(0, 1]``; (during training) an unknown epoch
            length with ``alignment_stop_fraction``, sample weights missing from the batch, of the wrong length,
            negative or non-finite, or a loss function that does not give one value per sample with
            ``sample_weight_key``.

    Example:
        >>> import torch
        >>> from monai.networks.schedulers import DDPMScheduler
        >>> from medsyn_monai.networks.nets import LightweightDiffusionUNet
        >>> net = LightweightDiffusionUNet(2, 1, 1, channels=(8, 16), norm_num_groups=4)
        >>> data = [{"image": torch.zeros(2, 1, 8, 8)}] * 3
        >>> trainer = DiffusionTrainer("cpu", 1, data, net, torch.optim.Adam(net.parameters()),
        ...                            DDPMScheduler(num_train_timesteps=100))
        >>> trainer.run()
        >>> trainer.state.iteration, trainer.loss_components
        (3, [])
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
        alignment_expert: nn.Module | None = None,
        align_module: str | None = None,
        expert_input: str | ExpertInput = ExpertInput.NOISY,
        noise_loss_weight: float = 1.0,
        alignment_loss_weight: float = 0.5,
        alignment_stop_fraction: float | str | None = None,
        sample_weight_key: str | None = None,
        sample_weight_normalize: bool = False,
        max_nonfinite_batches: int = 0,
        distributed: bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        if int(max_nonfinite_batches) < 0:
            raise ValueError(f"max_nonfinite_batches must be >= 0, got {max_nonfinite_batches}.")
        if isinstance(max_grad_norm, str) and max_grad_norm.strip().lower() in NONE_STRINGS:
            max_grad_norm = None  # the command line's --max_grad_norm null (python-fire passes the string)
        if max_grad_norm is not None and (
            isinstance(max_grad_norm, (bool, str)) or not math.isfinite(float(max_grad_norm)) or max_grad_norm <= 0
        ):
            raise ValueError(f"max_grad_norm must be a positive number or None (null), got {max_grad_norm!r}.")
        for name, value in (("noise_loss_weight", noise_loss_weight), ("alignment_loss_weight", alignment_loss_weight)):
            if not math.isfinite(float(value)) or float(value) < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
        stop_fraction = self._stop_fraction(alignment_stop_fraction)
        if str(expert_input) not in [e.value for e in ExpertInput]:
            raise ValueError(f"expert_input must be one of {[e.value for e in ExpertInput]}, got {expert_input!r}.")
        device = torch.device(device)
        self.raw_network = network  # uncompiled module: what checkpoints, EMA and the feature hooks refer to
        use_ddp = is_distributed() if distributed is None else as_bool(distributed, "distributed")
        if use_ddp and not is_distributed():
            raise ValueError(
                "distributed=True needs an initialised process group of more than one process: start training with "
                "torchrun and the bundle's configs/multi_gpu_train.json."
            )
        #: ``True`` when training runs through ``DistributedDataParallel``
        self.distributed = use_ddp
        train_network: nn.Module = network
        if use_ddp:
            train_network = DistributedDataParallel(network, device_ids=[device] if device.type == "cuda" else None)
        self.pixel_loss: Callable = loss_function if loss_function is not None else DiffusionLoss()
        self.noise_loss_weight = float(noise_loss_weight)
        self.alignment_loss_weight = float(alignment_loss_weight)
        self.sample_weight_key = sample_weight_key
        self.sample_weight_normalize = as_bool(sample_weight_normalize, "sample_weight_normalize")
        self.expert_input = ExpertInput(expert_input)
        self.feature_alignment, self.alignment_expert = self._alignment_parts(
            feature_alignment, alignment_expert, device
        )
        #: fraction of the training iterations after which alignment is switched off (``None``: never)
        self.alignment_stop_fraction = stop_fraction if self.feature_alignment is not None else None
        self.feature_hook: FeatureHook | None = None
        self.input_hook: FeatureHook | None = None
        if self.feature_alignment is not None:
            self.feature_hook = FeatureHook(network, align_module)
            if self.feature_hook.channels not in (None, self.feature_alignment.diffusion_dim):
                raise ValueError(
                    f"the aligned features ({self.feature_hook.module_name!r}) have {self.feature_hook.channels} "
                    f"channels but the FeatureAlignmentLoss expects {self.feature_alignment.diffusion_dim}."
                )
            if self.expert_input == ExpertInput.NOISY:
                self.input_hook = FeatureHook(network, "", HookTarget.INPUT)
        self._per_sample_loss: Callable | None = None
        if sample_weight_key is not None:
            pixel = self.pixel_loss
            if isinstance(pixel, DiffusionLoss) and pixel.reduction == "mean":
                self._per_sample_loss = DiffusionLoss(pixel.loss_type, reduction="none")
            else:
                self._per_sample_loss = pixel
        #: names of the loss terms written to ``engine.state.output`` besides ``"loss"``
        self.loss_components: list[str] = []
        if self.feature_alignment is not None or sample_weight_key is not None or self.noise_loss_weight != 1:
            self.loss_components = ["loss_noise"] + (["loss_align"] if self.feature_alignment is not None else [])
        #: names of the statistics (not losses) written to ``engine.state.output``, logged like the loss components
        self.output_stats: list[str] = []
        if self.feature_alignment is not None:
            self.output_stats = ["align_proj_std", "align_target_std", "loss_align_shuffled"]
            self.output_stats += ["align_weight"] if self.alignment_stop_fraction is not None else []
        prepare_batch = DiffusionPrepareBatch(
            scheduler, label_key=label_key, cond_drop_prob=cond_drop_prob, null_class_label=null_class_label
        )
        kwargs.setdefault("decollate", False)  # the loss is all the handlers need; decollating costs time
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=train_network,
            optimizer=optimizer,
            loss_function=self._objective,
            epoch_length=epoch_length,
            prepare_batch=prepare_batch,
            inferer=inferer if inferer is not None else ConditionalDiffusionInferer(scheduler),
            train_handlers=train_handlers,
            amp=as_bool(amp, "amp"),
            compile=as_bool(compile, "compile"),
            compile_kwargs=compile_kwargs,
            **kwargs,
        )
        self.noise_scheduler = scheduler
        self.max_grad_norm = max_grad_norm
        self._sample_weights: torch.Tensor | None = None
        self._batch_checked = False
        self.max_nonfinite_batches = int(max_nonfinite_batches)
        setattr(self.state, "nonfinite_batches", 0)  # noqa: B010  # ignite's State takes new attributes
        self._skip_update = False
        self.add_event_handler(Events.ITERATION_STARTED, self._check_first_batch)
        self.add_event_handler(Events.STARTED, lambda engine: setattr(engine.state, "nonfinite_batches", 0))
        self.add_event_handler(IterationEvents.LOSS_COMPLETED, self._check_loss)
        if use_ddp and self.feature_alignment is not None:
            self.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self._average_alignment_gradients)
        if use_ddp:
            self.add_event_handler(Events.STARTED, self._log_process)
        self.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self._skip_nonfinite_update)
        if max_grad_norm is not None:
            self.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self._clip_gradients)

    @staticmethod
    def _stop_fraction(value: float | str | None) -> float | None:
        """``alignment_stop_fraction`` checked: ``None`` or a number in ``(0, 1]``."""
        if value is None or (isinstance(value, str) and value.strip().lower() in NONE_STRINGS):
            return None
        try:
            fraction = float(value) if not isinstance(value, bool) else math.nan
        except ValueError:
            fraction = math.nan
        if not 0.0 < fraction <= 1.0:  # also false for NaN
            raise ValueError(
                f"alignment_stop_fraction must be a number in (0, 1] (the fraction of training with alignment) or "
                f"None (null: aligned throughout), got {value!r}."
            )
        return fraction

    def alignment_active(self) -> bool:
        """Whether the current iteration has the alignment term: with feature alignment, before
        ``alignment_stop_fraction`` of the ``max_epochs * epoch_length`` iterations (always without a stop fraction).

        Raises:
            ValueError: ``alignment_stop_fraction`` with an unknown number of iterations (a loader without length and
                no ``epoch_length``).
        """
        if self.feature_alignment is None:
            return False
        fraction = self.alignment_stop_fraction
        if fraction is None:
            return True
        epochs, length = self.state.max_epochs, self.state.epoch_length
        if not epochs or not length:
            raise ValueError(
                "alignment_stop_fraction needs the number of training iterations (max_epochs * epoch_length): give "
                "epoch_length for a data loader without a length."
            )
        done = max(int(self.state.iteration) - 1, 0)  # iterations before the current one (ignite counts from 1)
        return done < fraction * int(epochs) * int(length)

    @staticmethod
    def _alignment_parts(
        loss: FeatureAlignmentLoss | None, expert: nn.Module | None, device: torch.device
    ) -> tuple[FeatureAlignmentLoss | None, nn.Module | None]:
        """Check the feature-alignment parts and put them on the training device."""
        if loss is None:
            return None, None
        if not isinstance(loss, FeatureAlignmentLoss):
            raise ValueError(f"feature_alignment must be a FeatureAlignmentLoss or None, got {type(loss)}.")
        if expert is None:
            raise ValueError(
                "feature_alignment needs alignment_expert: the frozen expert's features (e.g. "
                "FeatureExtractor.from_expert_checkpoint(<output_dir>/models/expert/best_model.pt))."
            )
        dim = getattr(expert, "feature_dim", None)
        if isinstance(dim, int) and dim != loss.expert_dim:
            raise ValueError(f"the expert gives {dim} features but the FeatureAlignmentLoss expects {loss.expert_dim}.")
        expert.requires_grad_(False)
        return loss.to(device), expert.to(device).eval()

    @contextmanager
    def _recording(self) -> Iterator[None]:
        """The feature hooks record during the training forward pass only."""
        with ExitStack() as stack:
            for hook in (self.feature_hook, self.input_hook):
                if hook is not None:
                    stack.enter_context(hook.recording())
            yield

    def _iteration(self, engine: SupervisedTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """MONAI's iteration, with the batch's sample weights read first and the feature hooks recording."""
        self._sample_weights = self._read_sample_weights(batchdata, engine.state.device)
        try:
            with self._recording():
                return super()._iteration(engine, batchdata)
        finally:
            self._sample_weights = None

    def _read_sample_weights(self, batchdata: Any, device: torch.device | None) -> torch.Tensor | None:
        if self.sample_weight_key is None:
            return None
        if not isinstance(batchdata, dict) or self.sample_weight_key not in batchdata:
            raise ValueError(f"the batch has no {self.sample_weight_key!r} entry (sample_weight_key).")
        weights = convert_to_tensor(batchdata[self.sample_weight_key], track_meta=False)
        weights = weights.detach().float().reshape(-1)
        if not torch.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(f"sample weights must be finite and >= 0, got {weights.tolist()}.")
        return weights.to(device)

    def _objective(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``noise_loss_weight * loss_noise + alignment_loss_weight * loss_align``; components go to the output."""
        weights = self._sample_weights
        if weights is not None:
            per_sample_loss = self._per_sample_loss
            assert per_sample_loss is not None  # set with sample_weight_key, the only way to get sample weights
            per_sample = per_sample_loss(prediction, target)
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
        if not self.loss_components:
            return noise
        output = self.state.output
        output["loss_noise"] = noise.detach()
        total = self.noise_loss_weight * noise
        if self.feature_alignment is not None:
            active = self.alignment_active()
            if self.alignment_stop_fraction is not None:
                output["align_weight"] = torch.tensor(self.alignment_loss_weight if active else 0.0)
            if active:  # switched off: no expert forward pass at all
                align = self._alignment_loss(output[Keys.IMAGE], output)
                output["loss_align"] = align.detach()
                total = total + self.alignment_loss_weight * align
        return total

    def _expert_features(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen expert's features of ``images``: pooled, or its feature map for a spatial loss."""
        assert self.alignment_expert is not None and self.feature_alignment is not None
        expert = self.alignment_expert
        with torch.no_grad():
            feature_map = getattr(expert, "feature_map", None) if self.feature_alignment.spatial else None
            if callable(feature_map) and not isinstance(feature_map, nn.Module):
                return feature_map(images)
            return expert(images)

    def _alignment_loss(self, clean_images: torch.Tensor, output: dict[str, Any]) -> torch.Tensor:
        """The alignment loss of the forward pass just recorded by the feature hooks; the spread of the projected and
        target features goes to ``output``."""
        assert self.feature_hook is not None and self.alignment_expert is not None
        assert self.feature_alignment is not None  # set together with the hooks and the expert
        features = self.feature_hook.features
        images = clean_images if self.input_hook is None else self.input_hook.features
        if features is None or images is None:
            raise RuntimeError(
                "the feature hooks recorded nothing in this forward pass: the network being trained must be the one "
                "the DiffusionTrainer was built with (its hooks are on that module)."
            )
        projected, target = self.feature_alignment.project(features, self._expert_features(images.detach()))
        if projected.shape[0] > 1:
            output["align_proj_std"] = FeatureAlignmentLoss.batch_std(projected)
            output["align_target_std"] = FeatureAlignmentLoss.batch_std(target)
            with torch.no_grad():  # the same loss against another image's target: the per-image information gap
                shuffled = self.feature_alignment.compare(projected.detach(), target.detach().roll(1, dims=0))
            output["loss_align_shuffled"] = shuffled.detach()
        return self.feature_alignment.compare(projected, target)

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

    def _check_loss(self, engine: Engine) -> None:
        """Stop (or, within ``max_nonfinite_batches``, skip the update) when the loss is NaN or infinite."""
        output: Any = engine.state.output
        loss = output[Keys.LOSS]
        finite = bool(torch.isfinite(loss.detach()).all())
        if self.distributed:  # the gradients are averaged: a NaN on one process reaches every process's step
            finite = all_reduce_max([0.0 if finite else 1.0])[0] == 0.0
        if finite:
            return
        count = int(getattr(engine.state, "nonfinite_batches", 0)) + 1
        setattr(engine.state, "nonfinite_batches", count)  # noqa: B010  # ignite's State takes new attributes
        where = f"epoch {engine.state.epoch}, iteration {engine.state.iteration}"
        if count > self.max_nonfinite_batches:
            allowed = f" (more than max_nonfinite_batches={self.max_nonfinite_batches})" * (
                self.max_nonfinite_batches > 0
            )
            raise NonFiniteLossError(
                f"the training loss is {float(loss.detach().float().mean())} at {where}{allowed}: training stopped "
                "before this batch changed the weights (a checkpoint holds only finite weights). Usual causes: "
                "NaN/inf or extreme values in the images, too high a learning rate (--learning_rate), no gradient "
                "clipping (--max_grad_norm), float16 overflow (--amp false). To skip a few such batches instead, set "
                "--max_nonfinite_batches N."
            )
        logging.getLogger(__name__).warning(
            f"non-finite loss at {where}: batch skipped ({count} of at most {self.max_nonfinite_batches})"
        )
        self._skip_update = True

    def _skip_nonfinite_update(self, engine: Engine) -> None:
        """Drop the gradients of a skipped batch, so the optimizer step leaves every parameter as it was."""
        if not self._skip_update:
            return
        self._skip_update = False
        if self.amp and self.scaler is not None:
            return  # the gradient scaler skips steps with non-finite gradients itself
        self.optimizer.zero_grad(set_to_none=True)

    def _log_process(self, engine: Engine) -> None:
        loader: Any = self.data_loader
        batch = getattr(loader, "batch_size", None)
        world = get_world_size()
        per_epoch = engine.state.epoch_length
        logging.getLogger(__name__).info(
            f"rank {dist.get_rank()} of {world}: DistributedDataParallel on {self.state.device}, {per_epoch} "
            f"iterations per epoch, batch {batch} per process (global batch {batch * world if batch else '?'})"
        )

    def _average_alignment_gradients(self, engine: Engine) -> None:
        """Average the projection's gradients over the processes (DistributedDataParallel covers the network's)."""
        assert self.feature_alignment is not None  # the handler is added with feature alignment only
        world = get_world_size()
        for param in self.feature_alignment.parameters():
            if param.grad is not None:
                dist.all_reduce(param.grad)
                param.grad.div_(world)

    def _clip_gradients(self, engine: Engine) -> None:
        if self.amp and self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = list(self.raw_network.parameters())
        if self.feature_alignment is not None:
            params += list(self.feature_alignment.parameters())
        max_grad_norm = self.max_grad_norm
        assert max_grad_norm is not None  # this handler is added only when max_grad_norm is given
        norm = torch.nn.utils.clip_grad_norm_(params, float(max_grad_norm))
        self.state.grad_norm = float(norm)
