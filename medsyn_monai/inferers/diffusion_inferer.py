"""Diffusion inferer that passes class labels to the network, with classifier-free guidance and CPU autocast."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import nullcontext
from typing import cast

import torch
from monai.inferers import DiffusionInferer
from monai.networks.schedulers import RFlowScheduler, Scheduler
from monai.utils import optional_import

from medsyn_monai.networks.schedulers.protocol import SamplingScheduler
from medsyn_monai.utils.precision import resolve_cpu_bf16

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["ConditionalDiffusionInferer", "rescale_guidance"]


def _check_rescale(value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"guidance_rescale must be in [0, 1], got {value}.")
    return value


def rescale_guidance(guided: torch.Tensor, conditional: torch.Tensor, guidance_rescale: float) -> torch.Tensor:
    """Classifier-free guidance rescale (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are
    Flawed", Eq. 15-16).

    The guided prediction is rescaled per sample so that its standard deviation (over all non-batch axes) equals the
    conditional prediction's, and mixed with the unrescaled one: ``phi * rescaled + (1 - phi) * guided``. This
    counters the over-exposure (too large values) that large guidance weights cause.

    Args:
        guided: guided prediction ``u + w (c - u)``, ``(B, ...)``.
        conditional: conditional prediction ``c``, same shape.
        guidance_rescale: ``phi`` in ``[0, 1]``; ``0`` returns ``guided`` unchanged, ``1`` the fully rescaled one.

    Returns:
        the rescaled prediction, same shape and dtype as ``guided``.

    Raises:
        ValueError: ``guidance_rescale`` outside ``[0, 1]`` or shapes that differ.

    Example:
        >>> import torch
        >>> c, g = torch.randn(2, 1, 4, 4), 5 * torch.randn(2, 1, 4, 4)
        >>> out = rescale_guidance(g, c, 1.0)
        >>> torch.allclose(out.std(dim=(1, 2, 3)), c.std(dim=(1, 2, 3)))
        True
    """
    phi = _check_rescale(guidance_rescale)
    if guided.shape != conditional.shape:
        raise ValueError(f"guided {tuple(guided.shape)} and conditional {tuple(conditional.shape)} shapes differ.")
    if phi == 0.0:
        return guided
    dims = tuple(range(1, guided.ndim))
    std_cond = conditional.float().std(dim=dims, keepdim=True)
    std_guided = guided.float().std(dim=dims, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    rescaled = guided.float() * (std_cond / std_guided)
    return (phi * rescaled + (1.0 - phi) * guided.float()).to(guided.dtype)


def _autocast_dtype(value: str | torch.dtype | None) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    names = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if value not in names:
        raise ValueError(f"autocast_dtype must be one of {sorted(names)} or None, got {value!r}.")
    return names[value]


class ConditionalDiffusionInferer(DiffusionInferer):
    """MONAI's :class:`~monai.inferers.DiffusionInferer` that also passes ``class_labels`` to the network.

    MONAI's inferer forwards only cross-attention ``condition`` to the diffusion model; class-conditional networks
    (``num_class_embeds``) need ``class_labels``. This inferer forwards both, for the training forward pass
    (:meth:`__call__`) and for sampling (:meth:`sample`), where it adds classifier-free guidance (Ho & Salimans,
    "Classifier-Free Diffusion Guidance", 2022): ``out = out_uncond + w * (out_cond - out_uncond)``, with the
    unconditional branch evaluated on ``null_class_label``. ``w = 1`` is plain conditional sampling. With
    ``guidance_rescale = phi > 0`` the guided prediction is rescaled towards the conditional prediction's standard
    deviation (Lin et al. 2024, see :func:`rescale_guidance`), which keeps large ``w`` from over-saturating samples.

    It can also run the network under ``torch.autocast`` with bfloat16, which roughly doubles CPU training and
    sampling speed on processors with AVX512-BF16 / AMX (see ``benchmarks/bench_throughput.py``); the network output
    is returned as float32. ``cpu_bf16=True`` does so only when the images are on the CPU (GPU training has its own
    mixed precision, the trainer's ``amp``), so one config serves ``--device cpu`` and ``--device cuda``.

    Args:
        scheduler: the noise scheduler (DDPM, DDIM, PNDM or RFlow from :mod:`monai.networks.schedulers`).
        autocast_dtype: ``None`` (full precision), ``"bfloat16"`` or ``"float16"``: dtype of ``torch.autocast`` on
            the input's device for the network's forward pass, on any device.
        cpu_bf16: autocast to bfloat16 when the input is on the CPU (when ``autocast_dtype`` is ``None``): a boolean
            (the command-line spellings of :func:`~medsyn_monai.utils.as_bool`) or ``"auto"``, on only where the CPU
            has bfloat16 instructions (:func:`~medsyn_monai.utils.resolve_cpu_bf16`; elsewhere PyTorch emulates
            bfloat16, many times slower than float32).
        guidance_scale: default classifier-free guidance weight ``w`` for :meth:`sample`.
        null_class_label: class index the network was trained with as "no class" (condition dropout); required
            when sampling with ``guidance_scale != 1``.
        guidance_rescale: default guidance rescale ``phi`` in ``[0, 1]`` for :meth:`sample` (0: none).

    Example:
        >>> import torch
        >>> from monai.networks.schedulers import DDPMScheduler
        >>> from medsyn_monai.networks.nets import LightweightDiffusionUNet
        >>> net = LightweightDiffusionUNet(2, 1, 1, channels=(8, 16), norm_num_groups=4, num_class_embeds=3)
        >>> inferer = ConditionalDiffusionInferer(DDPMScheduler(num_train_timesteps=10))
        >>> x = torch.randn(2, 1, 8, 8)
        >>> pred = inferer(x, net, noise=torch.randn_like(x), timesteps=torch.tensor([1, 5]),
        ...                class_labels=torch.tensor([0, 2]))
        >>> pred.shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        scheduler: Scheduler,
        autocast_dtype: str | torch.dtype | None = None,
        guidance_scale: float = 1.0,
        null_class_label: int | None = None,
        guidance_rescale: float = 0.0,
        cpu_bf16: bool | str = False,
    ) -> None:
        super().__init__(scheduler)
        self.autocast_dtype = _autocast_dtype(autocast_dtype)
        self.cpu_bf16 = resolve_cpu_bf16(cpu_bf16)
        self.guidance_scale = float(guidance_scale)
        self.null_class_label = null_class_label
        self.guidance_rescale = _check_rescale(guidance_rescale)

    def _autocast(self, device: torch.device):
        dtype = self.autocast_dtype
        if dtype is None and self.cpu_bf16 and device.type == "cpu":
            dtype = torch.bfloat16
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    def _forward(
        self,
        diffusion_model: Callable,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        condition: torch.Tensor | None,
        class_labels: torch.Tensor | None,
    ) -> torch.Tensor:
        kwargs = {"x": x, "timesteps": timesteps, "context": condition}
        if class_labels is not None:
            kwargs["class_labels"] = class_labels
        with self._autocast(x.device):
            out = diffusion_model(**kwargs)
        return out.float()

    def __call__(
        self,
        inputs: torch.Tensor,
        diffusion_model: Callable,
        noise: torch.Tensor,
        timesteps: torch.Tensor,
        condition: torch.Tensor | None = None,
        mode: str = "crossattn",
        seg: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Noise ``inputs`` to ``timesteps`` with ``noise`` and return the network's prediction.

        Args:
            inputs: clean images ``(B, C, *spatial)``.
            diffusion_model: the network.
            noise: noise of the same shape as ``inputs``.
            timesteps: ``(B,)`` training time steps.
            condition: cross-attention conditioning (``mode="crossattn"``) or channels to concatenate
                (``mode="concat"``).
            mode: ``"crossattn"`` or ``"concat"``.
            seg: not supported (SPADE networks); must be ``None``.
            class_labels: ``(B,)`` class indices for class-conditional networks.
        """
        if mode not in ("crossattn", "concat"):
            raise ValueError(f"mode must be 'crossattn' or 'concat', got {mode!r}.")
        if seg is not None:
            raise ValueError("seg (SPADE) conditioning is not supported by ConditionalDiffusionInferer.")
        noisy = self.scheduler.add_noise(original_samples=inputs, noise=noise, timesteps=timesteps)
        if mode == "concat":
            if condition is None:
                raise ValueError("mode='concat' needs a condition.")
            noisy = torch.cat([noisy, condition], dim=1)
            condition = None
        return self._forward(diffusion_model, noisy, timesteps, condition, class_labels)

    def guided_prediction(
        self,
        diffusion_model: Callable,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        condition: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        guidance_scale: float | None = None,
        guidance_rescale: float | None = None,
    ) -> torch.Tensor:
        """Network prediction with classifier-free guidance ``u + w (c - u)`` (one batched forward pass).

        Args:
            diffusion_model: the network.
            x: noisy images at ``timesteps``.
            timesteps: ``(B,)`` time steps.
            condition: cross-attention conditioning, passed unchanged to both branches.
            class_labels: ``(B,)`` class indices; guidance needs them.
            guidance_scale: ``w``; defaults to the inferer's ``guidance_scale``. ``1`` returns the conditional
                prediction with a single forward pass, ``0`` (without rescale) the unconditional one, also with a
                single forward pass.
            guidance_rescale: ``phi`` of :func:`rescale_guidance`; defaults to the inferer's ``guidance_rescale``.
                It has no effect at ``w = 1``.

        Raises:
            ValueError: guidance (``w != 1``) without ``class_labels`` or without the inferer's
                ``null_class_label``, or ``guidance_rescale`` outside ``[0, 1]``.
        """
        w = self.guidance_scale if guidance_scale is None else float(guidance_scale)
        phi = self.guidance_rescale if guidance_rescale is None else _check_rescale(guidance_rescale)
        if w == 1.0 or class_labels is None:
            if w != 1.0:
                raise ValueError("classifier-free guidance (guidance_scale != 1) needs class_labels.")
            return self._forward(diffusion_model, x, timesteps, condition, class_labels)
        if self.null_class_label is None:
            raise ValueError(
                "guidance_scale != 1 needs null_class_label: the class index the model was trained with as 'no class' "
                "(condition dropout)."
            )
        null = torch.full_like(class_labels, int(self.null_class_label))
        if w == 0.0 and phi == 0.0:  # purely unconditional: one forward pass on the null label
            return self._forward(diffusion_model, x, timesteps, condition, null)
        both = torch.cat([x, x]), torch.cat([timesteps, timesteps]), torch.cat([class_labels, null])
        cond_both = None if condition is None else torch.cat([condition, condition])
        out_cond, out_uncond = self._forward(diffusion_model, both[0], both[1], cond_both, both[2]).chunk(2)
        guided = out_uncond + w * (out_cond - out_uncond)
        return rescale_guidance(guided, out_cond, phi)

    @torch.no_grad()
    def sample(  # type: ignore[override]  # class_labels/guidance arguments instead of MONAI's cfg/cfg_fill_value
        self,
        input_noise: torch.Tensor,
        diffusion_model: Callable,
        scheduler: SamplingScheduler | None = None,
        save_intermediates: bool | None = False,
        intermediate_steps: int | None = 100,
        conditioning: torch.Tensor | None = None,
        mode: str = "crossattn",
        verbose: bool = True,
        seg: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        guidance_rescale: float | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Denoise ``input_noise`` through ``scheduler.timesteps``.

        Args:
            input_noise: starting noise ``(B, C, *spatial)``.
            diffusion_model: the network (e.g. the EMA copy).
            scheduler: scheduler to sample with (e.g. a DDIM scheduler after ``set_timesteps``); defaults to the
                inferer's.
            save_intermediates: also return the images every ``intermediate_steps`` steps.
            intermediate_steps: interval for ``save_intermediates``.
            conditioning: cross-attention conditioning.
            mode: ``"crossattn"`` or ``"concat"``.
            verbose: show a progress bar.
            seg: not supported.
            class_labels: ``(B,)`` class indices for class-conditional networks.
            guidance_scale: classifier-free guidance weight; defaults to the inferer's.
            generator: random generator for the stochastic steps (DDPM, DDIM with ``eta > 0``), for reproducibility.
            guidance_rescale: guidance rescale ``phi`` in ``[0, 1]``; defaults to the inferer's.

        Returns:
            the sampled images, plus the list of intermediates when ``save_intermediates``.
        """
        if seg is not None:
            raise ValueError("seg (SPADE) conditioning is not supported by ConditionalDiffusionInferer.")
        if guidance_rescale is not None:
            _check_rescale(guidance_rescale)
        scheduler = scheduler or cast(SamplingScheduler, self.scheduler)
        image = input_noise
        takes_generator = "generator" in inspect.signature(scheduler.step).parameters
        is_rflow = isinstance(scheduler, RFlowScheduler)
        timesteps = list(scheduler.timesteps)
        next_timesteps = timesteps[1:] + [0] if is_rflow else [None] * len(timesteps)
        steps = zip(timesteps, next_timesteps, strict=True)
        if verbose and has_tqdm:
            steps = tqdm(steps, total=len(timesteps), desc="sampling")
        intermediates = []
        for t, next_t in steps:
            t_batch = torch.as_tensor(t, device=image.device).reshape(1).expand(image.shape[0])
            model_in, cond = image, conditioning
            if mode == "concat":
                if conditioning is None:
                    raise ValueError("mode='concat' needs conditioning.")
                model_in, cond = torch.cat([image, conditioning], dim=1), None
            out = self.guided_prediction(
                diffusion_model, model_in, t_batch, cond, class_labels, guidance_scale, guidance_rescale
            )
            if is_rflow:
                image, _ = scheduler.step(out, t, image, next_t)
            elif takes_generator:
                image, _ = scheduler.step(out, t, image, generator=generator)
            else:
                image, _ = scheduler.step(out, t, image)
            if save_intermediates and int(t) % int(intermediate_steps or 1) == 0:
                intermediates.append(image)
        return (image, intermediates) if save_intermediates else image
